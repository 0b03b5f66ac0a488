"""Access control: principals (users, API keys), roles, area scope, audit.

The core decides *who may see what*; the API only extracts credentials from requests.
"""

from gridmap.auth.principal import Principal, Role

__all__ = ["Principal", "Role"]
