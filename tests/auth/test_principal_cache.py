"""The principal cache re-reads keys and users only when they changed (auth_version)."""

from __future__ import annotations

import time

from sqlalchemy import Engine, text

from gridmap.auth.cache import PrincipalCache
from gridmap.auth.store import hash_key
from tests.conftest import make_key


def _wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_unchanged_tables_are_not_read_again(city_engine: Engine) -> None:
    secret = make_key(city_engine, "system")
    cache = PrincipalCache(city_engine, ttl_s=0.05)
    assert cache.by_key(secret) is not None
    loaded = cache._keys
    for _ in range(20):  # many checks, nothing changed: the same maps stay in use
        time.sleep(0.06)
        assert cache.by_key(secret) is not None
    assert _wait_for(lambda: not cache._lock.locked())
    assert cache._keys is loaded


def test_a_change_made_by_another_process_is_picked_up(city_engine: Engine) -> None:
    secret = make_key(city_engine, "system")
    cache = PrincipalCache(city_engine, ttl_s=0.05)
    assert cache.by_key(secret) is not None
    # Revoked behind the cache's back (another API process, the CLI): no invalidate().
    with city_engine.begin() as conn:
        conn.execute(text("UPDATE api_keys SET revoked_at = now() WHERE key_hash = :h"),
                     {"h": hash_key(secret)})
    assert _wait_for(lambda: cache.by_key(secret) is None)


def test_recording_last_use_does_not_force_a_reload(city_engine: Engine) -> None:
    secret = make_key(city_engine, "system")
    cache = PrincipalCache(city_engine, ttl_s=0.05)
    cache.by_key(secret)
    with city_engine.connect() as conn:
        before = conn.execute(text("SELECT version FROM auth_version")).scalar()
    def last_used() -> object:
        cache.by_key(secret)  # when stale, the background check writes last_used_at
        with city_engine.connect() as conn:
            return conn.execute(text("SELECT last_used_at FROM api_keys WHERE key_hash = :h"),
                                {"h": hash_key(secret)}).scalar()

    assert _wait_for(lambda: last_used() is not None)
    with city_engine.connect() as conn:
        after = conn.execute(text("SELECT version FROM auth_version")).scalar()
    assert after == before
