"""The peer for HTTP lookups: what a user assembles from FastAPI + PostGIS directly.

One SQL query per request (ST_Covers over the GiST index, lowest code first), the way
MapIt answers point queries. Run by bench_lookup_http with uvicorn.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

SQL = """
SELECT code, name FROM areas
WHERE level = 'grid' AND generation_high IS NULL
  AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
ORDER BY code LIMIT 1
"""

pool = ConnectionPool(os.environ["PEER_DATABASE_URL"], min_size=4, max_size=16, open=True)
app = FastAPI()


@app.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/lookup")
def lookup(lon: float, lat: float) -> dict[str, object]:
    with pool.connection() as conn:
        row = conn.execute(SQL, (lon, lat)).fetchone()
    return {"grid": None if row is None else {"code": row[0], "name": row[1]}}
