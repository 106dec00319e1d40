"""The settlement journal: usage that the store could not take is kept on local disk and replayed later.

A settlement must never be lost, whatever the outage policy: when ``store.settle``
raises :class:`StoreUnavailable` (or the request was admitted by ``fail_open`` without the store), the
settlement is appended to a local file as one JSON line and fsync'd before the request finishes, and a
background task settles it once the store answers again. Settlement is idempotent by request id, so a
settlement that Redis applied but whose reply was lost, or a replay cut short by a crash, counts once.
(The idempotency marker lives ``idempotency_ttl``, a day: a journal must be replayed within that time.)

Files: each process appends to its own ``<stem>-<pid>-<random>.jsonl`` and holds an exclusive ``flock``
on it while it is open. Rotating closes it (releasing the lock) and the next append opens a new one. Any
``<stem>-*.jsonl`` whose lock can be taken has no writer: its owner rotated it, or died. A replayer takes
the lock, settles every line, then unlinks the file while still holding the lock; files of a process
that crashed are picked up by whichever process with the same stem runs next (so processes sharing a
stem must share a store). A new file is created under a temporary name, locked, then linked to its
``.jsonl`` name, so a replayer never takes a file that is about to be written.

All file I/O runs on one writer thread (appends, batched into one write and one fsync) or in the
default executor (replay reads): the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from proxy.store.base import (
    Admission,
    AlertFeed,
    Crossing,
    Decision,
    FedAlert,
    Period,
    Scope,
    Settlement,
    Spend,
    Store,
    StoreUnavailable,
)
from proxy.store.records import RecordPage, RecordQuery, UsageRecord

log = logging.getLogger("efflux.journal")

REPLAY_EVERY = 1.0  # seconds between attempts to replay (a cheap glob when there is nothing to do)
MAX_IN_FLIGHT = 100_000  # admissions remembered until they settle
_ROTATE = b""  # the writer's queue item asking it to close its current file


def encode(settlement: Settlement) -> bytes:
    """One line of the journal: everything settle needs, scopes and reservation included."""
    return (
        orjson.dumps(
            {
                "record": orjson.Fragment(settlement.record.to_json()),
                "scopes": [
                    {k: v for k, v in asdict(scope).items() if k != "ident"} for scope in settlement.scopes
                ],
                "reserved_tokens": settlement.reserved_tokens,
                "reserved_micro_usd": settlement.reserved_micro_usd,
                "reserved": settlement.reserved,
            }
        )
        + b"\n"
    )


def decode(line: bytes) -> Settlement:
    data = orjson.loads(line)
    scopes = tuple(
        Scope(**{**s, "period": Period(s["period"]), "alert_at": tuple(s["alert_at"])})
        for s in data["scopes"]
    )
    record = UsageRecord.from_json(orjson.dumps(data["record"]))
    return Settlement(
        record, scopes, data["reserved_tokens"], data["reserved_micro_usd"], data.get("reserved", True)
    )


class Journal:
    """Appends settlements to this process's journal file and replays every unowned journal file."""

    def __init__(self, stem: str | Path) -> None:
        stem = Path(stem)
        self.directory = stem.parent
        self.stem = stem.name
        # Items: a line, _ROTATE (close the current file after the lines before it), or None (stop).
        self._queue: queue.SimpleQueue[tuple[bytes | None, concurrent.futures.Future[None]]] = (
            queue.SimpleQueue()
        )
        self._fd: int | None = None  # the writer thread's file; only that thread touches it
        self._written = 0  # lines in the current file (read by the loop to skip needless rotations)
        self._thread = threading.Thread(target=self._write_forever, name="efflux-journal", daemon=True)
        self._started = False
        self._closed = False

    # -- appending (any task; the disk work is the writer thread's) ------------------------------------

    async def append(self, settlement: Settlement) -> None:
        """Returns once the line is on disk (fsync'd); raises OSError if it could not be written."""
        await asyncio.wrap_future(self._submit(encode(settlement)))

    def _submit(self, item: bytes | None) -> concurrent.futures.Future[None]:
        if self._closed:
            raise RuntimeError("the journal is closed")
        if not self._started:
            self._started = True
            self._thread.start()
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put((item, done))
        return done

    def _write_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            lines = [item for item, _ in batch if item]
            try:
                if lines:
                    self._write(b"".join(lines))
                    self._written += len(lines)
                error: OSError | None = None
            except OSError as exc:
                error = exc
            for item, done in batch:
                if not item:  # rotate (or stop): after the lines queued before it
                    self._close_file()
                if error is not None and item:
                    done.set_exception(error)
                else:
                    done.set_result(None)
            if any(item is None for item, _ in batch):
                return

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self._fd = self._create()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    def _create(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{self.stem}-{os.getpid()}-{secrets.token_hex(6)}"
        temporary, final = self.directory / f"{name}.tmp", self.directory / f"{name}.jsonl"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # before it is visible as .jsonl: no replayer can take it
            os.link(temporary, final)  # fails rather than replacing an existing journal
            os.unlink(temporary)
            _fsync_directory(self.directory)
        except OSError:
            os.close(fd)
            raise
        return fd

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock: the file is now anyone's to replay
            self._fd = None
            self._written = 0

    # -- replaying ----------------------------------------------------------------------------------

    async def replay(self, store: Store) -> int:
        """Settle every journal file no writer holds (this process's current one after rotating it).

        Returns how many settlements were sent. Raises :class:`StoreUnavailable` when the store fails
        midway; the file being replayed is kept whole and replayed again later (idempotent).
        """
        if self._written and not self._closed:
            await asyncio.wrap_future(self._submit(_ROTATE))
        loop = asyncio.get_running_loop()
        paths = await loop.run_in_executor(None, self._files)
        sent = 0
        for path in paths:
            claimed = await loop.run_in_executor(None, _claim, path)
            if claimed is None:
                continue
            fd, lines = claimed
            try:
                for number, line in enumerate(lines, start=1):
                    try:
                        settlement = decode(line)
                    except (ValueError, KeyError, TypeError):
                        # Only a crash in the middle of a write leaves a torn line, and then only the last.
                        log.error(
                            "unreadable journal line skipped",
                            extra={
                                "fields": {
                                    "msg": "unreadable journal line",
                                    "file": str(path),
                                    "line": number,
                                }
                            },
                        )
                        continue
                    await store.settle(settlement)
                    sent += 1
            except BaseException:
                os.close(fd)
                raise
            await loop.run_in_executor(None, _discard, path, fd)
        return sent

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{self.stem}-*.jsonl"))

    async def close(self) -> None:
        """Flush and close this process's file (left for the next replay, by this process or another)."""
        if self._started and not self._closed:
            await asyncio.wrap_future(self._submit(None))
            self._closed = True
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10.0)
        self._closed = True


def _claim(path: Path) -> tuple[int, list[bytes]] | None:
    """Lock a journal file nobody writes to and read its lines; None if it is held or already gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Another replayer may have finished and unlinked it between our open and our lock.
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError(path)
        with os.fdopen(os.dup(fd), "rb") as reader:
            data = reader.read()
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd, [line for line in data.split(b"\n") if line.strip()]


def _discard(path: Path, fd: int) -> None:
    try:
        os.unlink(path)  # while still locked: no other replayer can be reading it now
        _fsync_directory(path.parent)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scope_fields(scope: Scope) -> dict[str, object]:
    fields = asdict(scope)
    del fields["ident"]  # derived: rebuilt by Scope itself
    return fields


class JournaledStore:
    """A :class:`Store` whose settlements survive a store outage (see the module docstring).

    A request waits on the store for at most ``budget`` seconds in all (no request
    hangs on Redis): its settlement gets what its admission left of it, then carries on in the background
    (settled late, or journaled), its alert crossings reaching the store's alert feed either way.
    Every verb but ``settle`` (and ``admit``, timed) is the wrapped store's; ``run`` is the replay task.
    """

    # Settlements run in their own task (below), so a cancelled caller never cuts one.
    settle_is_shielded = True

    def __init__(self, store: Store, journal: Journal, *, budget: float = 0.1) -> None:
        self.store = store
        self.journal = journal
        self.budget = budget
        self._waited: dict[str, float] = {}  # request id -> seconds its admission took, until it settles
        self._pending: set[asyncio.Task[list[Crossing]]] = set()

    async def admit(self, admission: Admission) -> Decision:
        started = time.monotonic()
        decision = await self.store.admit(admission)
        if decision.admitted:
            if len(self._waited) >= MAX_IN_FLIGHT:  # a caller admitting without settling: forget the oldest
                del self._waited[next(iter(self._waited))]
            self._waited[admission.request_id] = time.monotonic() - started
        return decision

    async def settle(self, settlement: Settlement) -> list[Crossing]:
        waited = self._waited.pop(settlement.record.request_id, 0.0)
        task = asyncio.get_running_loop().create_task(self._settle(settlement))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        # Not reserved: the store failed this request's admission moments ago; it does not wait again.
        left = self.budget - waited if settlement.reserved else 0.0
        if left > 0:
            await asyncio.wait({task}, timeout=left)
        return task.result() if task.done() else []

    async def _settle(self, settlement: Settlement) -> list[Crossing]:
        if settlement.reserved:
            try:
                return await self.store.settle(settlement)
            except StoreUnavailable:
                pass
        try:
            await self.journal.append(settlement)
        except (OSError, RuntimeError) as exc:
            log.error(
                "usage record lost: neither the store nor the journal took it",
                extra={"fields": {"msg": "usage record lost", "error": repr(exc),
                                  "record": orjson.loads(settlement.record.to_json())}},
            )  # fmt: skip
        return []  # crossings of a journaled settlement are found when it is replayed

    async def drain(self) -> None:
        """Wait for settlements still running in the background (each is bounded by the store timeout)."""
        while self._pending:
            await asyncio.wait(set(self._pending))

    async def run(self, every: float = REPLAY_EVERY) -> None:
        """Replay the journals whenever the store answers, until cancelled."""
        while True:
            await asyncio.sleep(every)
            try:
                sent = await self.journal.replay(self.store)
            except StoreUnavailable:
                continue
            except Exception:
                log.exception("journal replay failed", extra={"fields": {"msg": "journal replay failed"}})
                continue
            if sent:
                log.info(
                    "journal replayed", extra={"fields": {"msg": "journal replayed", "settlements": sent}}
                )

    # -- the wrapped store's verbs --------------------------------------------------------------------

    async def records(self, query: RecordQuery) -> RecordPage:
        return await self.store.records(query)

    async def spend(self, scope: Scope, now: float) -> Spend:
        return await self.store.spend(scope, now)

    async def get_doc(self, kind: str, id: str) -> bytes | None:
        return await self.store.get_doc(kind, id)

    async def put_doc(self, kind: str, id: str, value: bytes) -> int:
        return await self.store.put_doc(kind, id, value)

    async def delete_doc(self, kind: str, id: str) -> bool:
        return await self.store.delete_doc(kind, id)

    async def list_docs(self, kind: str) -> dict[str, bytes]:
        return await self.store.list_docs(kind)

    async def doc_version(self, kind: str) -> int:
        return await self.store.doc_version(kind)

    async def try_lock(self, name: str, owner: str, ttl: float) -> bool:
        return await self.store.try_lock(name, owner, ttl)

    async def put_response(self, id: str, value: bytes, ttl: float) -> None:
        await self.store.put_response(id, value, ttl)

    async def get_response(self, id: str) -> bytes | None:
        return await self.store.get_response(id)

    async def delete_response(self, id: str) -> bool:
        return await self.store.delete_response(id)

    async def ping(self) -> None:
        await self.store.ping()

    @property
    def alert_feed(self) -> AlertFeed | None:
        return self.store.alert_feed

    def background(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {**self.store.background(), "efflux-journal-replay": self.run()}

    async def close(self) -> None:
        try:
            await self.drain()
            await self.journal.close()
            # One last attempt, so that a clean shutdown after an outage leaves no journal behind.
            await asyncio.wait_for(self.journal.replay(self.store), timeout=5.0)
        except (StoreUnavailable, TimeoutError, OSError):
            log.warning("journal kept for the next start", extra={"fields": {"msg": "journal kept"}})
        finally:
            await self.store.close()


__all__ = ["FedAlert", "Journal", "JournaledStore", "decode", "encode"]
