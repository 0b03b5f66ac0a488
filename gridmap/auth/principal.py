"""Who is calling: a user or an API key, with a role and an area scope."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Role(enum.StrEnum):
    """The roles of the issue: what each may do is decided in :mod:`gridmap.auth.policy`."""

    admin = "admin"
    gis_editor = "gis_editor"
    operator = "operator"
    grid_worker = "grid_worker"
    reporter = "reporter"
    system = "system"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``area_code`` scopes an operator (city, district, street or community code);
    ``grid_codes`` are a grid worker's own grids. ``None`` scope means the whole city.
    """

    kind: str  # "user" or "key"
    id: int
    name: str
    role: Role
    area_code: str | None = None
    grid_codes: tuple[str, ...] = field(default_factory=tuple)
    user_id: int | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"{self.kind}:{self.name}"

    @property
    def identity(self) -> str:
        """A stable id of this caller (``user:12``, ``key:3``): what events record as reporter."""
        return f"{self.kind}:{self.id}"

    @property
    def city_wide(self) -> bool:
        """True when no area restriction applies."""
        return self.role not in (Role.operator, Role.grid_worker) or (
            self.role is Role.operator and self.area_code is None
        )
