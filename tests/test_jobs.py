"""The durable job runner: leases, recovery after a lost worker, failure with a reason."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from openpersonalize.config import Settings
from openpersonalize.context import Context
from openpersonalize.jobs import runner
from openpersonalize.store.database import JobRow


class FakeClock:
    """A clock the test moves by hand (time itself, not our code, is what is replaced)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _context(tmp_path: Path, clock: FakeClock) -> Context:
    context = Context.open(Settings(data_dir=tmp_path))
    context.clock = clock
    return context


def _jobs(context: Context) -> list[JobRow]:
    with context.database.transaction() as session:
        return list(session.scalars(select(JobRow).order_by(JobRow.id)))


def test_job_of_a_lost_worker_is_run_again(tmp_path: Path) -> None:
    ran: list[int] = []
    runner.register("test-echo", lambda job: ran.append(job.attempt), lambda *_: None)
    clock = FakeClock()
    context = _context(tmp_path, clock)
    with context.database.transaction() as session:
        runner.enqueue(session, "test-echo", "arn:aws:personalize:r:1:x/y", clock(), max_attempts=2)
    lost = runner.Worker(context, lease_seconds=30)
    assert lost.claim() is not None  # claimed, then the worker "dies" without finishing
    survivor = runner.Worker(context, lease_seconds=30)
    survivor.recover_expired()
    assert survivor.claim() is None  # the lease still holds
    clock.now += 31
    survivor.recover_expired()
    survivor.run_until_idle()
    assert ran == [2]
    assert [job.state for job in _jobs(context)] == ["done"]


def test_job_out_of_attempts_fails_with_reason(tmp_path: Path) -> None:
    failures: list[tuple[str, str]] = []
    runner.register(
        "test-never", lambda job: None, lambda _ctx, arn, reason: failures.append((arn, reason))
    )
    clock = FakeClock()
    context = _context(tmp_path, clock)
    with context.database.transaction() as session:
        runner.enqueue(
            session, "test-never", "arn:aws:personalize:r:1:x/z", clock(), max_attempts=1
        )
    assert runner.Worker(context, lease_seconds=10).claim() is not None
    clock.now += 11
    runner.Worker(context, lease_seconds=10).recover_expired()
    (job,) = _jobs(context)
    assert job.state == "failed"
    assert failures and failures[0][0] == "arn:aws:personalize:r:1:x/z"
    assert "worker running this job stopped" in failures[0][1]


def test_exception_in_job_records_failure(tmp_path: Path) -> None:
    failures: list[str] = []

    def explode(job: runner.JobHandle) -> None:
        raise ValueError("s3://b/k.csv line 3, column TIMESTAMP: bad")

    runner.register("test-explode", explode, lambda _ctx, _arn, reason: failures.append(reason))
    context = _context(tmp_path, FakeClock())
    with context.database.transaction() as session:
        runner.enqueue(session, "test-explode", "arn:aws:personalize:r:1:x/w", 0.0)
    runner.Worker(context).run_until_idle()
    assert failures == ["s3://b/k.csv line 3, column TIMESTAMP: bad"]
    assert _jobs(context)[0].state == "failed"
