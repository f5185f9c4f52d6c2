"""Executors: where cohorts run. The same study runs unchanged on each.

* ``inline``: one cohort after another in this process (tests, laptops);
* ``local``: one worker process per cohort, ``workers`` at a time; with ``device: auto`` and GPUs,
  one cohort per GPU at a time; with one named GPU (``cuda:N``), ``workers`` (default 1) cohorts on
  it; without GPUs, CPU processes sharing the cores (``threads`` each). A worker cannot outlive
  its driver (on Linux the kernel kills it when the driver dies; everywhere it checks its parent
  every second), and a worker that dies fails no other cohort: its cohort is started again from
  its checkpoints, up to ``executor.retries`` times, then its runs fail with the reason;
* ``ray``: each cohort is a Ray task asking for one GPU (or CPUs when the cluster has none), so a
  study spreads over a cluster. Needs ``pip install kdtemp[ray]`` and a shared filesystem for the
  study's output folder.

Workers return results; only the driver writes the store. A member that finishes while the rest of
its cohort trains is handed to the driver at once (``finished``): inline by a call, from a local
worker through its pipe, from a Ray task by the driver reading its run folder. By default a CPU
machine's cores are shared out, never oversubscribed: workers x threads <= the cores this process
may use (:func:`available_cores`), on GPU slots too.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..config import ConfigError
from ..files import warn
from .spec import ExecutorConfig


@dataclass
class Task:
    """One cohort to train: its configuration (plain data), the runs folder and the run ids."""

    cohort_id: str
    cohort: dict[str, Any]
    runs_dir: str
    run_ids: list[str]
    teacher_id: str | None = None
    diagnose: bool = False
    temperatures: list[float] | None = None


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def train_cohort(cohort: dict[str, Any], runs_dir: str, device: str, threads: int | None,
                 progress: bool | str = False, diagnose: bool = False, temperatures: list[float] | None = None,
                 member_done: Callable[[dict], None] | None = None) -> dict:
    """Train one cohort (in whatever process runs this); return its results as plain dicts and,
    when ``diagnose`` is set, the teacher's diagnostics on the un-augmented training split.
    ``member_done(result)``: each member's result as soon as it finishes (see :func:`run_cohort`)."""
    import torch

    from ..config import from_dict
    from ..engine import CohortConfig, TeacherDiagnosis, run_cohort
    from ..engine.diagnose import DEFAULT_TEMPERATURES

    if threads:
        torch.set_num_threads(threads)
    config = from_dict(CohortConfig, {**cohort, "device": device})
    diagnosis = TeacherDiagnosis(tuple(temperatures or DEFAULT_TEMPERATURES)) if diagnose and config.teacher else None
    done = (lambda result: member_done(result.__dict__)) if member_done is not None else None
    results = [result.__dict__ for result in split_on_oom(run_cohort, config, runs_dir, progress, diagnosis, done)]
    return {"results": results, "teacher": diagnosis.result if diagnosis is not None else None}


def split_on_oom(run_cohort: Callable, config: Any, runs_dir: str, progress: bool | str, diagnosis: Any,
                 member_done: Callable | None) -> list:
    """``run_cohort(config, ...)``; a cohort of two or more members that runs out of CUDA memory is
    split in two halves, each trained on (split again if it still does not fit). Members finished
    before the error are kept (their run folders are done, so a half returns them untrained) and
    the others continue from their last checkpoints; a single member that does not fit fails."""
    import dataclasses

    import torch

    try:
        return run_cohort(config, output=runs_dir, progress=progress, diagnosis=diagnosis, member_done=member_done)
    except torch.cuda.OutOfMemoryError:
        members = config.members
        if len(members) < 2:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(members) // 2
        from ..files import warn

        warn(f"a cohort of {len(members)} members ran out of CUDA memory; split into {half} and "
             f"{len(members) - half} and retried (finished members kept, the others from their checkpoints)")
        first = split_on_oom(run_cohort, dataclasses.replace(config, members=members[:half]), runs_dir, progress,
                             diagnosis, member_done)
        rest = None if diagnosis is None or diagnosis.result is not None else diagnosis
        return first + split_on_oom(run_cohort, dataclasses.replace(config, members=members[half:]), runs_dir,
                                    progress, rest, member_done)


Started = Callable[[Task], None] | None
Finished = Callable[[Task, dict], None] | None


def _describe(error: BaseException) -> str:
    lines = traceback.format_exception_only(type(error), error)
    return "".join(lines).strip()


class InlineExecutor:
    def __init__(self, config: ExecutorConfig, progress: bool = True) -> None:
        self.config, self.progress = config, progress

    def execute(self, tasks: list[Task], started: Started = None,
                finished: Finished = None) -> Iterator[tuple[Task, dict | None, str | None]]:
        for task in tasks:
            if started is not None:
                started(task)
            done = (lambda result, task=task: finished(task, result)) if finished is not None else None
            try:
                yield task, train_cohort(task.cohort, task.runs_dir, self.config.device, self.config.threads,
                                         self.progress, task.diagnose, task.temperatures, done), None
            except Exception as error:  # a broken cohort is recorded; the study goes on
                yield task, None, _describe(error)


def _die_with(parent: int) -> None:
    """Make this worker end when its driver ends, however the driver ends."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the driver died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while True:
            threading.Event().wait(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="kdtemp-parent-watch", daemon=True).start()


def _worker(connection, parent: int, arguments: tuple) -> None:
    """Entry point of a local worker process: train one cohort, send each member's result as it
    finishes (``("member", result)``), then the cohort's results or the error."""
    _die_with(parent)
    try:
        message = ("ok", train_cohort(*arguments, member_done=lambda result: connection.send(("member", result))))
    except BaseException as error:  # sent to the driver, which records it
        message = ("error", _describe(error))
    try:
        connection.send(message)
    finally:
        connection.close()


@dataclass
class _Running:
    task: Task
    slot: str
    process: Any
    connection: Any
    closed: bool = False  # the pipe reached its end without a message: wait for the process alone


class LocalExecutor:
    """One worker process per cohort on a slot: a device (``cuda:i``) or a CPU process."""

    def __init__(self, config: ExecutorConfig, progress: bool = True) -> None:
        import torch

        self.config, self.progress = config, progress
        cores = available_cores()
        if config.device in ("auto", "cuda") and torch.cuda.is_available():
            gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
            self.slots = gpus[: config.workers] if config.workers else gpus
        elif config.device.startswith("cuda"):  # one named GPU: one cohort on it at a time unless told otherwise
            self.slots = [config.device if config.device != "cuda" else "cuda:0"] * (config.workers or 1)
        else:
            device = "cpu" if config.device == "auto" else config.device
            self.slots = [device] * (config.workers or max(1, cores // 2))
        # each worker's share of the cores (the input pipeline and CPU kernels of a GPU worker too)
        self.threads = config.threads or max(1, cores // len(self.slots))
        if config.threads and len(self.slots) * config.threads > cores:
            warn(f"executor: {len(self.slots)} workers x {config.threads} threads exceed the {cores} cores here; "
                 "they will slow each other down")

    def execute(self, tasks: list[Task], started: Started = None,
                finished: Finished = None) -> Iterator[tuple[Task, dict | None, str | None]]:
        import multiprocessing
        from multiprocessing.connection import wait

        context = multiprocessing.get_context("spawn")
        pending, free = deque(tasks), list(self.slots)
        running: list[_Running] = []
        deaths: dict[str, int] = {}
        try:
            while pending or running:
                while pending and free:
                    task, slot = pending.popleft(), free.pop(0)
                    receiver, sender = context.Pipe(duplex=False)
                    lines = f"cohort {task.cohort_id}" if self.progress else False  # one line per epoch in the log
                    arguments = (task.cohort, task.runs_dir, slot, self.threads, lines, task.diagnose, task.temperatures)
                    process = context.Process(target=_worker, args=(sender, os.getpid(), arguments),
                                              name=f"kdtemp-cohort-{task.cohort_id}", daemon=False)
                    process.start()
                    sender.close()
                    if started is not None:
                        started(task)
                    running.append(_Running(task, slot, process, receiver))
                ready = wait([r.connection for r in running if not r.closed] + [r.process.sentinel for r in running])
                for entry in [r for r in running if r.connection in ready or r.process.sentinel in ready]:
                    message = None
                    while message is None and not entry.closed:
                        try:
                            if not entry.connection.poll():
                                break
                            received = entry.connection.recv()
                        except Exception:  # a worker killed while sending: treated as a death below
                            entry.closed = True
                            break
                        if received[0] != "member":
                            message = received
                        elif finished is not None:  # a member done while its cohort trains on
                            finished(entry.task, received[1])
                    if message is None and entry.process.is_alive():
                        continue  # the process sentinel will tell how it ended
                    entry.process.join(timeout=60)
                    if entry.process.is_alive():  # it sent its result but does not exit: it has nothing left to do
                        entry.process.kill()
                        entry.process.join()
                    entry.connection.close()
                    running.remove(entry)
                    free.append(entry.slot)
                    if message is not None:
                        kind, payload = message
                        yield entry.task, (payload if kind == "ok" else None), (payload if kind == "error" else None)
                        continue
                    code = entry.process.exitcode
                    cause = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    deaths[entry.task.cohort_id] = deaths.get(entry.task.cohort_id, 0) + 1
                    if deaths[entry.task.cohort_id] <= self.config.retries:
                        warn(f"the worker of cohort {entry.task.cohort_id} died ({cause}); starting it again from its "
                             f"checkpoints (attempt {deaths[entry.task.cohort_id] + 1} of {self.config.retries + 1})")
                        pending.appendleft(entry.task)
                    else:
                        yield entry.task, None, (f"its worker process died {deaths[entry.task.cohort_id]} times "
                                                 f"(last: {cause})")
        finally:
            for entry in running:  # the driver is leaving: its workers go with it
                entry.process.kill()
                entry.process.join()


class RayExecutor:
    """Each cohort is a Ray task with one GPU (or ``threads`` CPUs on a cluster without GPUs)."""

    def __init__(self, config: ExecutorConfig) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("executor.kind: 'ray' needs Ray; install it with: pip install 'kdtemp[ray]'") from None
        self.ray, self.config = ray, config

    def execute(self, tasks: list[Task], started: Started = None,
                finished: Finished = None) -> Iterator[tuple[Task, dict | None, str | None]]:
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            kwargs: dict[str, Any] = {"address": self.config.ray_address} if self.config.ray_address else {}
            if not self.config.ray_address:
                # A local instance started here serves this driver alone: it advertises localhost.
                kwargs["_node_ip_address"] = "127.0.0.1"
                if self.config.workers:
                    kwargs["num_cpus"] = self.config.workers * (self.config.threads or 1)
            try:
                ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
            except Exception as error:  # Ray raises many kinds (connection, timeout, runtime)
                where = self.config.ray_address or "a local instance"
                raise ConfigError(f"executor.ray_address: could not start or join Ray at {where} "
                                  f"({type(error).__name__}: {str(error).strip().splitlines()[0][:200]})") from None
        try:
            has_gpu = ray.cluster_resources().get("GPU", 0) > 0 and self.config.device != "cpu"
            threads = self.config.threads or 1
            options = {"num_gpus": 1, "num_cpus": threads} if has_gpu else {"num_cpus": threads}
            remote = ray.remote(**options)(train_cohort)
            device = "cuda" if has_gpu else "cpu"
            futures = {remote.remote(t.cohort, t.runs_dir, device, threads, False, t.diagnose, t.temperatures): t
                       for t in tasks}
            for task in tasks:  # handed to the cluster, which schedules them
                if started is not None:
                    started(task)
            reported: set[str] = set()
            while futures:
                done, _ = ray.wait(list(futures), num_returns=1, timeout=5.0 if finished is not None else None)
                if finished is not None:  # members done while their cohorts train on: their run folders say so
                    _report_finished(list(futures.values()), reported, finished)
                for reference in done:
                    task = futures.pop(reference)
                    try:
                        yield task, ray.get(reference), None
                    except Exception as error:
                        yield task, None, _describe(error)
        finally:
            if started_here:
                ray.shutdown()


def _report_finished(tasks: list[Task], reported: set[str], finished: Callable[[Task, dict], None]) -> None:
    """Hand ``finished`` each run of ``tasks`` whose run folder says it is done or failed (once)."""
    from ..engine.storage import RunFolder

    for task in tasks:
        for run_id in task.run_ids:
            if run_id in reported:
                continue
            metrics = RunFolder(task.runs_dir, run_id).read_metrics()
            if metrics and metrics.get("run_id") == run_id and metrics.get("status") in ("done", "failed"):
                reported.add(run_id)
                finished(task, metrics)


def make_executor(config: ExecutorConfig, progress: bool = True):
    """The executor ``config`` names. Each has ``execute(tasks, started=None, finished=None)``, which
    yields ``(task, results, error)`` as cohorts end, calls ``started(task)`` (in the driver's
    process) when a cohort begins (inline before it trains, local when its worker starts, Ray when
    the cluster takes it) and ``finished(task, result)`` for each member that finishes before its
    cohort does."""
    if config.kind == "inline":
        return InlineExecutor(config, progress)
    if config.kind == "local":
        return LocalExecutor(config, progress)
    return RayExecutor(config)
