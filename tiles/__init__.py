"""Map layers: vector tiles (SQL in ``tiles/sql``), the tile cache, OGC API – Features."""
