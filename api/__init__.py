"""gridmap HTTP API (FastAPI): translates HTTP to core calls, holds no business rules."""
