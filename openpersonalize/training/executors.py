"""Where training jobs and HPO trials run: local processes (the default) or Ray tasks.

Both executors offer the same small interface: `submit` a module-level function with
picklable arguments and get a `Task` to poll, read or kill. Arguments and results stay small
(keys, hyperparameters, metrics); data and models travel through the blob store
(store/blobs.py), which workers on other machines reach when it is a bucket.

Killing a task kills everything it started: a local task started by a worker leads its own
process group, which the trial processes it starts join; a Ray task is cancelled recursively.
And a local task process exits by itself if its parent dies, so nothing outlives a crash.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Protocol

from openpersonalize.config import Settings

POLL_SECONDS = 0.05
# What every local task process needs imported (training and HPO), loaded once per forkserver.
PRELOAD = ["openpersonalize.training.hpo"]


class TaskFailed(Exception):
    """The task raised, or its process died; the message says which."""


class Task(Protocol):
    def done(self) -> bool: ...

    def result(self) -> Any:
        """The function's return value (once done); raises TaskFailed if it did not return."""
        ...

    def kill(self) -> None: ...


class Executor(Protocol):
    def submit(self, function: Callable[..., Any], *args: Any, name: str) -> Task: ...


def for_settings(settings: Settings, preload: Sequence[str] = ()) -> Executor:
    """The configured executor; `preload`: modules local task processes should start with."""
    if settings.executor == "ray":
        return RayExecutor(settings.ray_address)
    return LocalExecutor(preload)


def wait_any(tasks: Sequence[Task], timeout: float) -> list[Task]:
    """The tasks that are done, waiting up to `timeout` seconds for at least one."""
    deadline = time.monotonic() + timeout
    while True:
        finished = [task for task in tasks if task.done()]
        if finished or time.monotonic() >= deadline:
            return finished
        time.sleep(POLL_SECONDS)


# -- local processes ---------------------------------------------------------------------------

# True inside a process that LocalExecutor started: the processes it starts in turn stay in
# its process group, so killing it kills them too.
_inside_local_task = False


class LocalExecutor:
    """Each task in a fresh process, forked from a server process that has the training code
    imported already (a trial then starts in milliseconds, not in the second imports take) and
    that shares no state with the caller.
    """

    def __init__(self, preload: Sequence[str] = ()) -> None:
        self.preload = [*PRELOAD, *preload]

    def submit(self, function: Callable[..., Any], *args: Any, name: str) -> LocalTask:
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(self.preload)  # read when the forkserver starts
        receiver, sender = forkserver.Pipe(duplex=False)
        leads_group = not _inside_local_task
        process = forkserver.Process(
            target=_run_local,
            args=(sender, leads_group, os.getpid(), function, args),
            name=name,
        )
        process.start()
        sender.close()  # the child holds the sending end now
        return LocalTask(process, receiver, leads_group)


class LocalTask:
    def __init__(
        self, process: multiprocessing.process.BaseProcess, results: Connection, leads_group: bool
    ) -> None:
        self.process = process
        self.results = results
        self.leads_group = leads_group

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def done(self) -> bool:
        return self.results.poll() or not self.process.is_alive()

    def result(self) -> Any:
        # The child sends its outcome before it exits, so a dead child with nothing sent died.
        outcome = self.results.recv() if self.results.poll() else None
        self.process.join()
        if outcome is None:
            raise TaskFailed(f"ended unexpectedly (exit code {self.process.exitcode})")
        status, value = outcome
        if status == "error":
            raise TaskFailed(value)
        return value

    def kill(self) -> None:
        if self.leads_group and self.process.pid is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # not yet its own group leader: killing the process below is enough
        self.process.kill()
        self.process.join()


def _run_local(
    results: Connection,
    leads_group: bool,
    owner: int,
    function: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    global _inside_local_task
    _inside_local_task = True
    if leads_group:
        os.setpgid(0, 0)
    exit_with_parent(owner)
    try:
        outcome = ("ok", function(*args))
    except BaseException as error:  # the caller decides what a failure means
        outcome = ("error", f"{type(error).__name__}: {error}")
    results.send(outcome)


def exit_with_parent(owner: int) -> None:
    """Die with `owner`, the process that asked for this one: an orphaned training run or trial
    would only waste the machine. (Our parent is the forkserver, not the owner, and the
    forkserver outlives the owner for as long as any process it forked lives.)"""

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if not _alive(owner):
                os._exit(1)

    threading.Thread(target=watch, name="owner-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (not Linux): existence is all we can tell
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- Ray ---------------------------------------------------------------------------------------


class RayExecutor:
    """Each task a Ray task (one CPU) on the cluster at `address` (or the one we run inside)."""

    def __init__(self, address: str | None) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(
                address=address or "auto",
                log_to_driver=False,
                logging_level="warning",
                include_dashboard=False,
            )
        self._remote: dict[Callable[..., Any], Any] = {}

    def submit(self, function: Callable[..., Any], *args: Any, name: str) -> RayTask:
        import ray

        if function not in self._remote:
            # No retries: a killed or failed trial is reported, not silently run again.
            self._remote[function] = ray.remote(num_cpus=1, max_retries=0)(function)
        return RayTask(self._remote[function].options(name=name).remote(*args))


class RayTask:
    def __init__(self, reference: Any) -> None:
        self.reference = reference

    def done(self) -> bool:
        import ray

        ready, _ = ray.wait([self.reference], timeout=0)
        return bool(ready)

    def result(self) -> Any:
        import ray

        try:
            return ray.get(self.reference)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            raise TaskFailed(f"{type(cause).__name__}: {cause}") from error
        except ray.exceptions.RayError as error:  # the worker died, the task was cancelled, ...
            raise TaskFailed(f"{type(error).__name__}: {error}") from error

    def kill(self) -> None:
        import ray

        ray.cancel(self.reference, force=True, recursive=True)
