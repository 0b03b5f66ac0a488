"""gridmap: grid-management core (网格化管理) — domain and spatial logic, no HTTP."""

__version__ = "0.1.0"
