"""The one durable job runner: a queue in the database, worker processes, leases and heartbeats.

A create call enqueues a job in the same transaction that records its
resource. Workers claim queued jobs with a lease and renew it while they run;
a job whose lease runs out (its worker died, or the whole server was killed) is
queued again, or failed with a reason once it has used up its attempts. So no
job stays running forever and no acknowledged work is forgotten.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from openpersonalize.context import Context
from openpersonalize.store.database import JobRow

log = logging.getLogger("openpersonalize.jobs")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
POLL_SECONDS = 0.1


class JobCancelled(Exception):
    """Raised inside a job (by `JobHandle.check_cancelled`) when a stop was requested."""


@dataclass
class JobHandle:
    """What a running job may do: read its payload, report progress, notice cancellation."""

    context: Context
    job_id: int
    kind: str
    resource_arn: str
    payload: dict
    attempt: int

    def progress(self, fraction: float, message: str = "") -> None:
        log.info("%s %s: %3.0f%% %s", self.kind, self.resource_arn, 100 * fraction, message)

    def cancel_requested(self) -> bool:
        with self.context.database.transaction() as session:
            return bool(
                session.scalar(select(JobRow.cancel_requested).where(JobRow.id == self.job_id))
            )

    def check_cancelled(self) -> None:
        if self.cancel_requested():
            raise JobCancelled(self.resource_arn)


@dataclass(frozen=True)
class JobKind:
    """A job type: `run` does the work; `fail` records why it could not (on the resource)."""

    run: Callable[[JobHandle], None]
    fail: Callable[[Context, str, str], None]


JOB_KINDS: dict[str, JobKind] = {}
# Work every worker does now and then (e.g. start due automatic training): (task, seconds).
PERIODIC: list[tuple[Callable[[Context], object], float]] = []


def register(
    kind: str, run: Callable[[JobHandle], None], fail: Callable[[Context, str, str], None]
) -> None:
    JOB_KINDS[kind] = JobKind(run=run, fail=fail)


def register_periodic(task: Callable[[Context], object], every_seconds: float) -> None:
    PERIODIC.append((task, every_seconds))


def enqueue(
    session: Session,
    kind: str,
    resource_arn: str,
    now: float,
    payload: dict | None = None,
    max_attempts: int = 2,
) -> None:
    """Queue a job inside the caller's transaction (so it exists exactly when its resource does)."""
    session.add(
        JobRow(
            kind=kind,
            resource_arn=resource_arn,
            state=QUEUED,
            payload=payload or {},
            attempts=0,
            max_attempts=max_attempts,
            created_at=now,
            updated_at=now,
        )
    )


def request_cancel(session: Session, resource_arn: str) -> None:
    session.execute(
        update(JobRow)
        .where(JobRow.resource_arn == resource_arn, JobRow.state.in_((QUEUED, RUNNING)))
        .values(cancel_requested=1)
    )


class Worker:
    """Claims and runs jobs one at a time until told to stop."""

    def __init__(self, context: Context, lease_seconds: float = 30.0) -> None:
        self.context = context
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        self.parent_pid: int | None = None

    def run_forever(self, parent_pid: int | None = None) -> None:
        _load_job_kinds()
        self.parent_pid = parent_pid
        last_run = [0.0] * len(PERIODIC)
        while not self.stopping.is_set():
            self.run_periodic(last_run)
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("server process %s is gone; worker %s exits", parent_pid, self.owner)
                return
            try:
                self.recover_expired()
                job = self.claim()
            except Exception:  # the database may be briefly unavailable; try again
                log.exception("worker %s could not poll for jobs", self.owner)
                job = None
            if job is None:
                self.stopping.wait(POLL_SECONDS)
                continue
            self.execute(job)

    def run_periodic(self, last_run: list[float]) -> None:
        for index, (task, every_seconds) in enumerate(PERIODIC):
            if time.monotonic() - last_run[index] >= every_seconds:
                last_run[index] = time.monotonic()
                try:
                    task(self.context)
                except Exception:  # never let housekeeping kill the worker
                    log.exception("periodic task %s failed", getattr(task, "__name__", task))

    def run_until_idle(self) -> None:
        """Run queued jobs in this process until none is left (used by tests and tools)."""
        _load_job_kinds()
        while (job := self.claim()) is not None:
            self.execute(job)

    def claim(self) -> JobHandle | None:
        now = self.context.now()
        with self.context.database.transaction() as session:
            job = session.scalar(
                select(JobRow).where(JobRow.state == QUEUED).order_by(JobRow.id).limit(1)
            )
            if job is None:
                return None
            attempt = job.attempts + 1  # read before the update refreshes `job`
            claimed = session.execute(
                update(JobRow)
                .where(JobRow.id == job.id, JobRow.state == QUEUED)
                .values(
                    state=RUNNING,
                    lease_owner=self.owner,
                    lease_expires=now + self.lease_seconds,
                    attempts=JobRow.attempts + 1,
                    updated_at=now,
                )
            ).rowcount
            if claimed != 1:
                return None
            return JobHandle(
                self.context, job.id, job.kind, job.resource_arn, dict(job.payload), attempt
            )

    def execute(self, job: JobHandle) -> None:
        kind = JOB_KINDS.get(job.kind)
        stop_heartbeat = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(job, stop_heartbeat), daemon=True
        )
        heartbeat.start()
        state, error = DONE, None
        try:
            if kind is None:
                raise RuntimeError(f"no handler for job kind {job.kind!r}")
            kind.run(job)
        except Exception as exc:  # a failed job is recorded, never lost
            state = FAILED
            error = str(exc) or type(exc).__name__
            if not isinstance(exc, JobCancelled):
                log.error(
                    "%s %s failed: %s\n%s",
                    job.kind,
                    job.resource_arn,
                    error,
                    traceback.format_exc(),
                )
                if kind is not None:
                    kind.fail(self.context, job.resource_arn, error)
        finally:
            stop_heartbeat.set()
            heartbeat.join()
        with self.context.database.transaction() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == job.job_id, JobRow.lease_owner == self.owner)
                .values(
                    state=state,
                    error=error,
                    lease_owner=None,
                    lease_expires=None,
                    updated_at=self.context.now(),
                )
            )

    def _heartbeat(self, job: JobHandle, stop: threading.Event) -> None:
        renewed = time.monotonic()
        while not stop.wait(min(1.0, self.lease_seconds / 3)):
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                # The server is gone: stop renewing and exit, so a restarted server retries.
                log.warning("server %s is gone; abandoning job %s", self.parent_pid, job.job_id)
                os._exit(1)
            if time.monotonic() - renewed < self.lease_seconds / 3:
                continue
            renewed = time.monotonic()
            try:
                with self.context.database.transaction() as session:
                    session.execute(
                        update(JobRow)
                        .where(JobRow.id == job.job_id, JobRow.lease_owner == self.owner)
                        .values(lease_expires=self.context.now() + self.lease_seconds)
                    )
            except Exception:
                log.exception("heartbeat for job %s failed", job.job_id)

    def recover_expired(self) -> None:
        """Requeue (or fail, once out of attempts) jobs whose worker stopped renewing the lease."""
        now = self.context.now()
        failed: list[tuple[str, str, str]] = []
        with self.context.database.transaction() as session:
            expired = session.scalars(
                select(JobRow).where(JobRow.state == RUNNING, JobRow.lease_expires < now)
            ).all()
            for job in expired:
                if job.attempts >= job.max_attempts or job.cancel_requested:
                    reason = (
                        f"The worker running this job stopped (attempt {job.attempts} of "
                        f"{job.max_attempts}); giving up."
                    )
                    job.state, job.error = FAILED, reason
                    failed.append((job.kind, job.resource_arn, reason))
                else:
                    log.warning(
                        "job %s for %s lost its worker; queued again", job.id, job.resource_arn
                    )
                    job.state = QUEUED
                job.lease_owner, job.lease_expires, job.updated_at = None, None, now
        for kind_name, resource_arn, reason in failed:
            kind = JOB_KINDS.get(kind_name)
            if kind is not None:
                kind.fail(self.context, resource_arn, reason)


def _load_job_kinds() -> None:
    # The resource modules register their job kinds when imported.
    import openpersonalize.resources  # noqa: F401


def worker_main(settings_dict: dict, parent_pid: int, lease_seconds: float) -> None:
    """Entry point of a worker process."""
    from openpersonalize.config import Settings

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us with SIGTERM
    settings = Settings(**settings_dict)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s [worker] %(message)s"
    )
    context = Context.open(settings)
    worker = Worker(context, lease_seconds=lease_seconds)
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    worker.run_forever(parent_pid=parent_pid)


class WorkerPool:
    """The worker processes a server owns; started with it and stopped with it."""

    def __init__(self, settings_dict: dict, count: int, lease_seconds: float) -> None:
        self.settings_dict = settings_dict
        self.count = count
        self.lease_seconds = lease_seconds
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self._watching = threading.Event()

    def start(self) -> None:
        self.processes = [self._spawn(index) for index in range(self.count)]
        self._watching.clear()
        threading.Thread(target=self._watch, name="worker-watch", daemon=True).start()

    def _spawn(self, index: int) -> multiprocessing.process.BaseProcess:
        # Not daemonic: a worker starts training processes of its own.
        process = multiprocessing.get_context("spawn").Process(
            target=worker_main,
            name=f"openpersonalize-worker-{index}",
            args=(self.settings_dict, os.getpid(), self.lease_seconds),
        )
        process.start()
        return process

    def _watch(self) -> None:
        """Replace a worker that died (killed, out of memory) so queued jobs still run."""
        while not self._watching.wait(1.0):
            for index, process in enumerate(self.processes):
                if not process.is_alive() and not self._watching.is_set():
                    log.warning(
                        "worker %s (pid %s) exited with %s; starting a new one",
                        index,
                        process.pid,
                        process.exitcode,
                    )
                    self.processes[index] = self._spawn(index)

    def stop(self, timeout: float = 10.0) -> None:
        self._watching.set()
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
        self.processes.clear()
