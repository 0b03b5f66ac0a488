"""A version number of everything the principal cache holds.

Each API process keeps keys, users and grid workers' grids in memory and used to re-read
all of them every two seconds — at city scale (65,000 worker assignments) a few hundred
milliseconds of Python in a background thread that held the GIL away from the event loop
(the p99 of lookups). Statement triggers now bump ``auth_version`` whenever users, keys
(except their last-use time) or worker assignments change; a process re-reads only when
the number moved.

Revision ID: 0009_authversion
Revises: 0008_reporter
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0009_authversion"
down_revision = "0008_reporter"
branch_labels = None
depends_on = None

# api_keys: last_used_at is written by the cache itself; it must not trigger a reload.
WATCHED = {
    "users": "",
    "api_keys": " OF name, key_hash, role, area_code, user_id, revoked_at",
    "worker_assignments": "",
}


def upgrade() -> None:
    op.execute("""
        CREATE TABLE auth_version (
            id integer PRIMARY KEY CHECK (id = 1),
            version bigint NOT NULL
        );
        INSERT INTO auth_version VALUES (1, 1);
        CREATE FUNCTION gridmap_bump_auth_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          UPDATE auth_version SET version = version + 1 WHERE id = 1;
          RETURN NULL;
        END $$;
    """)
    for table, columns in WATCHED.items():
        op.execute(f"""
            CREATE TRIGGER {table}_auth_version
            AFTER INSERT OR UPDATE{columns} OR DELETE OR TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION gridmap_bump_auth_version();
        """)


def downgrade() -> None:
    for table in WATCHED:
        op.execute(f"DROP TRIGGER {table}_auth_version ON {table}")
    op.execute("DROP FUNCTION gridmap_bump_auth_version(); DROP TABLE auth_version;")
