"""The server-side tile cache: tiles in memory, kept while the data under them is unchanged.

An entry remembers the layer version it was built at (``layer_versions``). A lookup
trusts a snapshot of the versions for ``version_ttl_s`` seconds (so that a cache hit
needs no database round trip); when the layer's version moved on, the entry is kept if
no change since its version touches the tile (``layer_changes`` bboxes), else rebuilt.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from gridmap.errors import GridmapError
from gridmap.layers import layer_versions, tile_touched_since
from tiles.async_build import AsyncTileBuilder
from tiles.layers import LAYERS, build_tile, check_tile, get_layer

TileKey = tuple[str, int, int, int, tuple[str, ...] | None]


@dataclass
class Tile:
    """A built tile, its ETag and the layer version it reflects."""

    body: bytes
    etag: str
    version: int


def etag_of(body: bytes) -> str:
    """A strong ETag of the tile's bytes."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


class TileCache:
    """An LRU of tiles with version checks; ``size=0`` builds every tile afresh."""

    def __init__(
        self, engine: Engine, *, size: int, feature_cap: int, version_ttl_s: float
    ) -> None:
        self.engine = engine
        self.size = size
        self.feature_cap = feature_cap
        self.version_ttl_s = version_ttl_s
        self._tiles: OrderedDict[TileKey, Tile] = OrderedDict()
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._versions_at = float("-inf")

    def peek(
        self, layer: str, z: int, x: int, y: int, scopes: tuple[str, ...] | None = None
    ) -> Tile | None:
        """The cached tile if it is certainly fresh, without touching the database.

        ``scopes`` (the caller's area patterns) are part of the key: an area-scoped
        caller never gets a tile built for a wider scope.
        """
        if self.size <= 0 or time.monotonic() - self._versions_at > self.version_ttl_s:
            return None
        with self._lock:
            tile = self._tiles.get((layer, z, x, y, scopes))
            if tile is None or tile.version != self._versions.get(layer):
                return None
            self._tiles.move_to_end((layer, z, x, y, scopes))
            return tile

    def get(
        self, layer: str, z: int, x: int, y: int, scopes: tuple[str, ...] | None = None
    ) -> Tile:
        """The tile, from the cache when still valid, else built (and cached)."""
        spec = get_layer(layer)
        check_tile(z, x, y)
        hit = self.peek(layer, z, x, y, scopes)
        if hit is not None:
            return hit
        with self.engine.connect() as conn:
            version = self._current_version(conn, layer)
            key: TileKey = (layer, z, x, y, scopes)
            with self._lock:
                old = self._tiles.get(key)
            if old is not None and (
                old.version == version
                or not tile_touched_since(conn, layer, old.version, {"z": z, "x": x, "y": y})
            ):
                old.version = version
                self._store(key, old)
                return old
            body = build_tile(conn, spec, z, x, y, self.feature_cap,
                              list(scopes) if scopes is not None else None)
        tile = Tile(body, etag_of(body), version)
        self._store(key, tile)
        return tile

    async def build_async(
        self, builder: AsyncTileBuilder, layer: str, z: int, x: int, y: int,
        scopes: tuple[str, ...] | None = None,
    ) -> Tile | None:
        """A missing tile built on ``builder`` (and cached); None when :meth:`get` must.

        Only the plain case is handled here: a known layer, z/x/y inside the matrix and
        no older entry of the tile (which :meth:`get` may keep after checking
        ``layer_changes``); a stale version snapshot is reloaded on ``builder`` too.
        Errors and the rest are left to :meth:`get`.
        """
        spec = LAYERS.get(layer)
        if spec is None:
            return None
        try:
            check_tile(z, x, y)
        except GridmapError:
            return None
        if time.monotonic() - self._versions_at > self.version_ttl_s:
            asked = time.monotonic()
            versions = await builder.layer_versions()
            if versions is None:
                return None
            self._versions, self._versions_at = versions, asked
        key: TileKey = (layer, z, x, y, scopes)
        with self._lock:
            if key in self._tiles:
                return None
            version = self._versions.get(layer, 0)
        body = await builder.build(spec, z, x, y, self.feature_cap,
                                   list(scopes) if scopes is not None else None)
        if body is None:
            return None
        tile = Tile(body, etag_of(body), version)
        self._store(key, tile)
        return tile

    def clear(self) -> None:
        """Forget every tile and the version snapshot."""
        with self._lock:
            self._tiles.clear()
            self._versions_at = float("-inf")

    def _current_version(self, conn: Connection, layer: str) -> int:
        now = time.monotonic()
        if now - self._versions_at > self.version_ttl_s:
            self._versions = layer_versions(conn)
            self._versions_at = now
        return self._versions.get(layer, 0)

    def _store(self, key: TileKey, tile: Tile) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._tiles[key] = tile
            self._tiles.move_to_end(key)
            while len(self._tiles) > self.size:
                self._tiles.popitem(last=False)
