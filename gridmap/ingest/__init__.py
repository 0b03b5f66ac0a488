"""Getting data in: bulk loads of whole cities (COPY, one transaction)."""

from gridmap.ingest.bulk import LOADED_TABLES, CityTables, LoadSummary, load_city

__all__ = ["LOADED_TABLES", "CityTables", "LoadSummary", "load_city"]
