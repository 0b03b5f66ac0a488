"""``gridmap user …`` and ``gridmap key …``: accounts and API keys from the command line."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from gridmap.auth import audit, store
from gridmap.auth.principal import Principal, Role
from gridmap.db.engine import session_scope

user_app = typer.Typer(help="User accounts (people who log in).", no_args_is_help=True)
key_app = typer.Typer(help="API keys (other systems).", no_args_is_help=True)

# Changes made from the command line are audited under this actor.
CLI = Principal("cli", 0, getpass.getuser(), Role.admin)
RoleOpt = Annotated[str, typer.Option(help=", ".join(r.value for r in Role))]
AreaOpt = Annotated[str | None, typer.Option("--area", help="area code (operators' scope)")]


def _wrap(func):  # type: ignore[no-untyped-def]
    from gridmap.cli import friendly_errors

    return friendly_errors(func)


@user_app.command("add")
@_wrap
def user_add(
    username: Annotated[str, typer.Argument(help="login name")],
    role: RoleOpt,
    area: AreaOpt = None,
    worker: Annotated[str | None, typer.Option(help="worker code (grid workers)")] = None,
    password: Annotated[str | None, typer.Option(
        help="password (default: prompt; or env GRIDMAP_NEW_PASSWORD)",
        envvar="GRIDMAP_NEW_PASSWORD")] = None,
) -> None:
    """Add a user (password hashed with argon2)."""
    secret = password or typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with session_scope() as session:
        user = store.add_user(session, username, secret, role, area, worker)
        audit.record(session, CLI, "write", "user", str(user.id), {"op": "add", "role": role})
    typer.echo(f"added user {username} ({role}{' ' + area if area else ''})")


@user_app.command("list")
@_wrap
def user_list() -> None:
    """List users: name, role, area, state."""
    with session_scope() as session:
        for u in store.list_users(session):
            state = "disabled" if u.disabled else "active"
            typer.echo(f"{u.username}\t{u.role}\t{u.area_code or '-'}\t{state}")


@user_app.command("disable")
@_wrap
def user_disable(username: Annotated[str, typer.Argument(help="login name")]) -> None:
    """Disable a user and revoke their keys."""
    with session_scope() as session:
        store.disable_user(session, username)
        audit.record(session, CLI, "write", "user", username, {"op": "disable"})
    typer.echo(f"disabled {username}")


@key_app.command("create")
@_wrap
def key_create(
    name: Annotated[str, typer.Argument(help="what system uses the key")],
    role: RoleOpt = Role.system.value,
    area: AreaOpt = None,
) -> None:
    """Create an API key; the key is printed once (only its hash is stored)."""
    with session_scope() as session:
        key = store.create_key(session, name, role, area)
        audit.record(session, CLI, "write", "api_key", str(key.id), {"op": "create", "role": role})
    typer.echo(f"key id {key.id} ({key.role}); store it now, it is not shown again:", err=True)
    typer.echo(key.secret)


@key_app.command("revoke")
@_wrap
def key_revoke(
    key_id: Annotated[int, typer.Argument(help="key id (see `gridmap key list`)")],
) -> None:
    """Revoke a key (refused everywhere within GRIDMAP_AUTH_CACHE_TTL_S seconds)."""
    with session_scope() as session:
        store.revoke_key(session, key_id)
        audit.record(session, CLI, "write", "api_key", str(key_id), {"op": "revoke"})
    typer.echo(f"revoked key {key_id}")


@key_app.command("list")
@_wrap
def key_list() -> None:
    """List keys: id, prefix, name, role, area, last used, state."""
    with session_scope() as session:
        for k in store.list_keys(session):
            state = "revoked" if k.revoked_at else "active"
            used = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never"
            typer.echo(f"{k.id}\t{k.prefix}…\t{k.name}\t{k.role}\t{k.area_code or '-'}\t"
                       f"{used}\t{state}")


def bootstrap_admin_password() -> str | None:
    """Create the first admin with a random password when no credentials exist."""
    with session_scope() as session:
        return store.bootstrap_admin(session)
