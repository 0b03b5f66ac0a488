"""Foundation: generations, areas, buildings, households, persons, facilities, workers.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import ARRAY

from gridmap.catalog import CATEGORIES, DEPARTMENTS, MAJOR_CLASSES

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    _create_generations_and_areas()
    _create_population()
    _create_facilities()
    _create_workers()
    _seed_catalogs()


def _create_generations_and_areas() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("activated_at", sa.DateTime(timezone=True)),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "uq_generations_one_active",
        "generations",
        ["active"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "areas",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(15), nullable=False),
        sa.Column("level", sa.String(12), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("parent_code", sa.String(15)),
        sa.Column("generation_low", sa.Integer, sa.ForeignKey("generations.id"), nullable=False),
        sa.Column("generation_high", sa.Integer, sa.ForeignKey("generations.id")),
        sa.Column(
            "geom", Geometry("MULTIPOLYGON", 4326, spatial_index=False), nullable=False
        ),
        sa.Column(
            "geom_3857", Geometry("MULTIPOLYGON", 3857, spatial_index=False), nullable=False
        ),
        sa.CheckConstraint(
            "level IN ('city','district','street','community','grid')", name="level_known"
        ),
        sa.CheckConstraint(
            "(level IN ('city','district') AND code ~ '^[0-9]{6}$')"
            " OR (level = 'street' AND code ~ '^[0-9]{9}$')"
            " OR (level = 'community' AND code ~ '^[0-9]{12}$')"
            " OR (level = 'grid' AND code ~ '^[0-9]{15}$')",
            name="code_format",
        ),
        sa.CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        sa.CheckConstraint(
            "generation_high IS NULL OR generation_high >= generation_low",
            name="generation_range",
        ),
    )
    # One row per code in any generation: ranges of the same code may not overlap.
    # Codes are all digits (code_format), so (numeric value, length) identifies a code
    # exactly; btree_gist on bigint is ~5x faster to maintain than on varchar.
    op.execute(
        "ALTER TABLE areas ADD CONSTRAINT ex_areas_code_per_generation EXCLUDE USING gist "
        "((code::bigint) WITH =, (length(code)) WITH =, "
        "int4range(generation_low, generation_high, '[]') WITH &&)"
    )
    op.create_index("ix_areas_geom", "areas", ["geom"], postgresql_using="gist")
    op.create_index("ix_areas_geom_3857", "areas", ["geom_3857"], postgresql_using="gist")
    op.create_index("ix_areas_parent_code", "areas", ["parent_code"])
    op.create_index("ix_areas_level_code", "areas", ["level", "code"])


def _create_population() -> None:
    op.create_table(
        "buildings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("floors", sa.Integer, nullable=False, server_default="1"),
        sa.Column("use", sa.String(32), nullable=False, server_default="residential"),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("geom", Geometry("POLYGON", 4326, spatial_index=False), nullable=False),
        sa.Column("geom_3857", Geometry("POLYGON", 3857, spatial_index=False), nullable=False),
    )
    op.create_index("ix_buildings_geom", "buildings", ["geom"], postgresql_using="gist")
    op.create_index(
        "ix_buildings_geom_3857", "buildings", ["geom_3857"], postgresql_using="gist"
    )
    op.create_index("ix_buildings_grid_code", "buildings", ["grid_code"])
    op.create_table(
        "households",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column(
            "building_id",
            sa.Integer,
            sa.ForeignKey("buildings.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("room", sa.String(16), nullable=False, server_default=""),
    )
    op.create_index("ix_households_building_id", "households", ["building_id"])
    op.create_table(
        "persons",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "household_id",
            sa.Integer,
            sa.ForeignKey("households.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("id_number", sa.String(18), nullable=False),
        sa.Column("phone", sa.String(20)),
        sa.Column("birth_date", sa.Date),
        sa.Column("gender", sa.String(1)),
        sa.Column("care_tags", ARRAY(sa.Text), nullable=False, server_default="{}"),
    )
    op.create_index("ix_persons_household_id", "persons", ["household_id"])
    op.create_index(
        "ix_persons_care_tags", "persons", ["care_tags"], postgresql_using="gin"
    )


def _create_facilities() -> None:
    op.create_table(
        "departments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False, server_default="government"),
    )
    op.create_table(
        "facility_categories",
        sa.Column("major_code", sa.String(2), primary_key=True),
        sa.Column("minor_code", sa.String(2), primary_key=True),
        sa.Column("major_name", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("owner_department_code", sa.String(32), sa.ForeignKey("departments.code")),
        sa.Column(
            "maintainer_department_code", sa.String(32), sa.ForeignKey("departments.code")
        ),
    )
    op.create_table(
        "facilities",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(16), nullable=False, unique=True),
        sa.Column("major_code", sa.String(2), nullable=False),
        sa.Column("minor_code", sa.String(2), nullable=False),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False, server_default="intact"),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("owner_department_code", sa.String(32)),
        sa.Column("maintainer_department_code", sa.String(32)),
        sa.Column("geom", Geometry("POINT", 4326, spatial_index=False), nullable=False),
        sa.CheckConstraint("code ~ '^[0-9]{16}$'", name="code_format"),
        sa.CheckConstraint(
            "substr(code, 7, 2) = major_code AND substr(code, 9, 2) = minor_code",
            name="code_matches_class",
        ),
        sa.CheckConstraint("state IN ('intact','damaged','lost','removed')", name="state_known"),
        sa.ForeignKeyConstraint(
            ["major_code", "minor_code"],
            ["facility_categories.major_code", "facility_categories.minor_code"],
        ),
    )
    op.create_index("ix_facilities_geom", "facilities", ["geom"], postgresql_using="gist")
    op.create_index("ix_facilities_grid_code", "facilities", ["grid_code"])
    op.create_index("ix_facilities_class", "facilities", ["major_code", "minor_code"])


def _create_workers() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("phone", sa.String(20)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("on_duty", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.CheckConstraint("role IN ('grid_leader','full_time','part_time')", name="role_known"),
    )
    op.create_table(
        "worker_assignments",
        sa.Column(
            "worker_id",
            sa.Integer,
            sa.ForeignKey("workers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("grid_code", sa.String(15), primary_key=True),
    )
    op.create_index("ix_worker_assignments_grid_code", "worker_assignments", ["grid_code"])


def _seed_catalogs() -> None:
    departments = sa.table(
        "departments", sa.column("code"), sa.column("name"), sa.column("kind")
    )
    op.bulk_insert(departments, [d._asdict() for d in DEPARTMENTS])
    categories = sa.table(
        "facility_categories",
        sa.column("major_code"),
        sa.column("minor_code"),
        sa.column("major_name"),
        sa.column("name"),
        sa.column("name_en"),
        sa.column("owner_department_code"),
        sa.column("maintainer_department_code"),
    )
    op.bulk_insert(
        categories,
        [
            {
                "major_code": c.major_code,
                "minor_code": c.minor_code,
                "major_name": MAJOR_CLASSES[c.major_code],
                "name": c.name,
                "name_en": c.name_en,
                "owner_department_code": c.owner,
                "maintainer_department_code": c.maintainer,
            }
            for c in CATEGORIES
        ],
    )


def downgrade() -> None:
    for table in (
        "worker_assignments",
        "workers",
        "facilities",
        "facility_categories",
        "departments",
        "persons",
        "households",
        "buildings",
        "areas",
        "generations",
    ):
        op.drop_table(table)
