"""Hot reload: load the config file again, validate it in full, and swap it in at once.

Triggers: SIGHUP, ``POST /admin/reload``, a changed file (``server.watch_config: true``), and a reload on
another replica. ``Reloader.reload`` reads the file, builds a new snapshot (every check of ``check``
included) and hands it to ``Live.rebase``, which lays the shared documents (overlay, synced catalogues,
keys) over it and swaps ``gateway.snapshot`` in one assignment. A bad file raises ConfigError naming the
YAML path and nothing changes. Requests in flight hold the snapshot they started with (the spine reads it
once), so their route, price and key never change.

Across replicas: a successful reload writes the file's digest to the ``config`` document; every replica
polls its version (``interval``) and re-reads its *own* file when the published digest differs from what it
serves, so each replica reloads within about ``interval`` of the first.

Not reloadable (read once at start, a change is reported in ``restart_required``): the store, the server's
host, port and admin token, and its connection settings (head and keep-alive timeouts, the cap).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiohttp import web

from proxy.config import ConfigError, Settings, load_settings
from proxy.gateway import GATEWAY, Gateway
from proxy.state.snapshot import build_snapshot
from proxy.store.base import StoreUnavailable
from proxy.tenancy.vault import check_secrets

log = logging.getLogger("efflux.reload")

KIND, DOC = "config", "current"
_RESTART_ONLY = (
    ("store", None),
    ("server", "host"),
    ("server", "port"),
    ("server", "admin_token"),
    # The listener's connection handling is built once, at start (proxy.edge.connections).
    ("server", "header_timeout"),
    ("server", "keepalive_timeout"),
    ("server", "max_connections"),
)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    version: int
    digest: str
    changed: bool
    restart_required: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "status": "reloaded" if self.changed else "unchanged",
            "version": self.version,
            "digest": self.digest,
            "restart_required": self.restart_required,
        }


def digest_of(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


class Reloader:
    def __init__(self, gw: Gateway, path: str | os.PathLike[str], interval: float = 0.5) -> None:
        self.gw = gw
        self.path = Path(path)
        self.interval = interval
        self.digest = digest_of(self.path)  # what this replica serves
        self.rejected = ""  # a bad file is reported once, not on every poll
        self._stat = self._file_stat()
        self._seen_version: int | None = None
        self._lock = asyncio.Lock()

    async def reload(self, source: str, *, publish: bool = True) -> ReloadResult:
        """Load, validate and swap. Raises ConfigError (the old config keeps serving)."""
        async with self._lock:
            digest = digest_of(self.path)
            current = self.gw.snapshot
            try:
                settings = load_settings(self.path)
                check_secrets(settings)  # the same refusals as at start (weak or reused secrets)
                if settings.secrets.key_secret != current.settings.secrets.key_secret:
                    # keys created through the API are digested under it: a reload would lock them out
                    raise ConfigError("secrets.key_secret: cannot change on reload; restart every replica")
                snapshot = build_snapshot(settings, version=current.version + 1)
            except ConfigError as exc:
                self.gw.metrics.reloads.labels("rejected").inc()
                if digest != self.rejected:
                    log.warning("config reload (%s) rejected, the old config keeps serving: %s", source, exc)
                self.rejected = digest
                raise
            restart = restart_required(current.settings, settings)
            changed = digest != self.digest
            assert self.gw.live is not None
            self.gw.live.rebase(snapshot)
            self.gw.alerts.webhooks = {
                n: t.alerts.webhook for n, t in settings.tenants.items() if t.alerts.webhook
            }
            self.gw.alerts.operator_config = settings.alerts
            self.digest, self.rejected = digest, ""
            self.gw.metrics.reloads.labels("applied").inc()
            log.info(
                "config reloaded (%s): version %d%s",
                source,
                snapshot.version,
                " (restart needed for " + ", ".join(restart) + ")" if restart else "",
            )
            if publish:
                await self._publish(digest)
            return ReloadResult(snapshot.version, digest, changed, restart)

    async def _publish(self, digest: str) -> None:
        doc = orjson.dumps({"digest": digest, "at": time.time()})
        try:
            self._seen_version = await self.gw.store.put_doc(KIND, DOC, doc)
        except StoreUnavailable:
            log.warning("store unreachable: other replicas will not hear of this reload until it returns")

    def _file_stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    async def start(self) -> None:
        """Note the published version at startup, before serving: it is in the file just read. (Taken at
        the first poll instead, a reload published in between would be mistaken for the start state and
        missed by this replica.)"""
        with contextlib.suppress(StoreUnavailable):
            self._seen_version = await self.gw.store.doc_version(KIND)

    async def check(self, watch_file: bool) -> None:
        """One poll: the published config version, then (when watching) the file itself."""
        version = await self.gw.store.doc_version(KIND)
        if self._seen_version is None:
            self._seen_version = version  # the store was down at start: take what is published now
        elif version != self._seen_version:
            self._seen_version = version
            raw = await self.gw.store.get_doc(KIND, DOC)
            published = orjson.loads(raw).get("digest") if raw else None
            if published != self.digest and digest_of(self.path) not in (self.digest, self.rejected):
                await self._quietly(self.reload("peer", publish=False))
        if watch_file:
            stat = self._file_stat()
            if stat != self._stat:
                self._stat = stat
                if digest_of(self.path) not in (self.digest, self.rejected):
                    await self._quietly(self.reload("file"))

    async def _quietly(self, reload: Coroutine[object, object, ReloadResult]) -> None:
        with contextlib.suppress(ConfigError):  # already logged and counted by reload()
            await reload

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check(self.gw.snapshot.settings.server.watch_config)
            except StoreUnavailable:
                pass  # the file watch resumes on the next poll; peers' reloads are seen when it returns
            except Exception:
                log.exception("config watch failed")

    def on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._quietly(self.reload("SIGHUP")))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)


_TASKS: set[asyncio.Task[None]] = set()


def restart_required(old: Settings, new: Settings) -> list[str]:
    """The changed settings a reload cannot apply (they are read once at start)."""
    out: list[str] = []
    for section, name in _RESTART_ONLY:
        before, after = getattr(old, section), getattr(new, section)
        if name is not None:
            before, after = getattr(before, name), getattr(after, name)
        if before != after:
            out.append(section if name is None else f"{section}.{name}")
    return out


RELOADER = web.AppKey("reloader", Reloader)


def background(
    config_path: str | os.PathLike[str] | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's reload resource (a cleanup_ctx after the gateway's own): the config watch task and the
    SIGHUP handler. Without a config file (the library use with settings built in code) there is nothing
    to reload, and ``POST /admin/reload`` says so."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        if config_path is None:
            yield
            return
        reloader = app[RELOADER] = Reloader(app[GATEWAY], config_path)
        await reloader.start()
        loop = asyncio.get_running_loop()
        task = loop.create_task(reloader.run(), name="efflux-reload")
        # Signal handlers belong to the main thread's loop; a gateway in a test thread has none.
        sighup = hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread()
        if sighup:
            loop.add_signal_handler(signal.SIGHUP, reloader.on_sighup)
        try:
            yield
        finally:
            if sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            task.cancel()

    return run
