"""Database access: the embedded PostgreSQL+PostGIS cluster and connections."""
