"""Sample-city layers as GIS staff deliver them (the field names of real files)."""

from __future__ import annotations

import geopandas as gpd

from sample_data.city import SampleCity


def grids_as_delivered(city: SampleCity) -> gpd.GeoDataFrame:
    """The grids with the DM/MC/SJDM fields of Chinese boundary files."""
    frame = city.level("grid")[["code", "name", "parent_code", "geometry"]].reset_index(drop=True)
    return frame.rename(columns={"code": "DM", "name": "MC", "parent_code": "SJDM"})
