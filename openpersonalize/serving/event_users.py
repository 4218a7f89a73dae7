"""Which users have streamed events, known to every server process at once.

Most GetRecommendations requests are for users without streamed events, and knowing that
saves the request its events query. PutEvents may be answered by any of the server's
processes, so the process that stored events appends a hash of each (dataset, user) to a
ring of slots in a memory-mapped file in the data directory; every process reads the slots
written since it last looked before it answers (a memory read when nothing changed). A
process that fell more than a ring behind reloads from the database. A hash collision can
only cost a needless events query, never a missed event.

Past MAX_TRACKED_USERS users a dataset is no longer tracked (memory stays bounded) and every
request of it queries its events.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import struct
import threading
from pathlib import Path

from sqlalchemy import select

from openpersonalize.context import Context
from openpersonalize.store.database import EventRow

MAX_TRACKED_USERS = 1_000_000  # per dataset
RING_FILE = "event-users.ring"  # in the data directory
RING_SLOTS = 1 << 16
_HEADER = struct.Struct("<Q")  # slots written so far, ever
_SLOT = struct.Struct("<Q")
RING_BYTES = _HEADER.size + RING_SLOTS * _SLOT.size


def user_hash(dataset_arn: str, user_id: str) -> int:
    """The same 64-bit value in every process (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(f"{dataset_arn}\0{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class _Ring:
    """The shared file: a write counter and RING_SLOTS slots of user hashes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0, 2)
            if handle.tell() < RING_BYTES:
                handle.truncate(RING_BYTES)
            fcntl.flock(handle, fcntl.LOCK_UN)
        self._file = open(path, "r+b")  # noqa: SIM115 - open for the process's lifetime
        self._map = mmap.mmap(self._file.fileno(), RING_BYTES)

    def written(self) -> int:
        return int(_HEADER.unpack_from(self._map, 0)[0])

    def append(self, hashes: list[int]) -> None:
        # Writers take turns (a file lock: other processes write too); each slot is written
        # before the counter that makes it visible.
        fcntl.flock(self._file, fcntl.LOCK_EX)
        try:
            count = self.written()
            for value in hashes:
                _SLOT.pack_into(self._map, _HEADER.size + (count % RING_SLOTS) * _SLOT.size, value)
                count += 1
            _HEADER.pack_into(self._map, 0, count)
        finally:
            fcntl.flock(self._file, fcntl.LOCK_UN)

    def read(self, start: int, end: int) -> list[int] | None:
        """The hashes of slots [start, end), or None if they were overwritten meanwhile."""
        if end - start > RING_SLOTS:
            return None
        values = [
            _SLOT.unpack_from(self._map, _HEADER.size + (n % RING_SLOTS) * _SLOT.size)[0]
            for n in range(start, end)
        ]
        return values if self.written() - start <= RING_SLOTS else None


class EventUsers:
    def __init__(self) -> None:
        self._known: set[int] = set()  # user_hash of users with events, in loaded datasets
        self._loaded: dict[str, int] = {}  # dataset -> users found when it was loaded
        self._untracked: set[str] = set()
        self._rings: dict[str, _Ring] = {}
        self._read_up_to = -1  # ring slots this process has read (-1: not started)
        self._lock = threading.Lock()

    def has_events(self, context: Context, dataset_arn: str, user_id: str) -> bool:
        self._catch_up(context)
        with self._lock:
            if dataset_arn in self._untracked:
                return True
            loaded = dataset_arn in self._loaded
        if not loaded:
            self._load(context, dataset_arn)
            with self._lock:
                if dataset_arn in self._untracked:
                    return True
        return user_hash(dataset_arn, user_id) in self._known

    def add(self, context: Context, dataset_arn: str, user_ids: set[str]) -> None:
        """After PutEvents stored events of `user_ids` (and committed)."""
        hashes = [user_hash(dataset_arn, user) for user in sorted(user_ids)]
        with self._lock:
            if dataset_arn in self._loaded:
                self._loaded[dataset_arn] += len(set(hashes) - self._known)
                if self._loaded[dataset_arn] > MAX_TRACKED_USERS:
                    self._untracked.add(dataset_arn)
            self._known.update(hashes)
        self._ring(context).append(hashes)

    def _ring(self, context: Context) -> _Ring:
        # Looked up on every request: by the data directory's name, resolved only once.
        key = str(context.data_dir)
        ring = self._rings.get(key)
        if ring is None:
            with self._lock:
                ring = self._rings.get(key) or _Ring((context.data_dir / RING_FILE).resolve())
                self._rings[key] = ring
        return ring

    def _catch_up(self, context: Context) -> None:
        ring = self._ring(context)
        written = ring.written()
        if written == self._read_up_to:
            return
        with self._lock:
            start, self._read_up_to = self._read_up_to, written
        if start < 0:
            return  # the first look: datasets load from the database when first asked about
        values = ring.read(start, written)
        with self._lock:
            # Fell a whole ring behind, or learned more users than any dataset may hold:
            # start over from the database.
            if values is None or len(self._known) > 4 * MAX_TRACKED_USERS:
                self._known.clear()
                self._loaded.clear()
            else:
                self._known.update(values)

    def _load(self, context: Context, dataset_arn: str) -> None:
        with context.database.snapshot() as session:
            users = list(
                session.scalars(
                    select(EventRow.user_id)
                    .where(EventRow.dataset_arn == dataset_arn)
                    .distinct()
                    .limit(MAX_TRACKED_USERS + 1)
                )
            )
        with self._lock:
            if len(users) > MAX_TRACKED_USERS:
                self._untracked.add(dataset_arn)
                return
            self._known.update(user_hash(dataset_arn, user) for user in users)
            self._loaded[dataset_arn] = len(users)
