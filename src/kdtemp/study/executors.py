"""Executors: where cohorts run. The same study runs unchanged on each.

* ``inline``: one cohort after another in this process (tests, laptops);
* ``local``: a pool of worker processes; with GPUs, one cohort per GPU at a time; without, CPU
  processes sharing the cores (``threads`` each);
* ``ray``: each cohort is a Ray task asking for one GPU (or CPUs when the cluster has none), so a
  study spreads over a cluster. Needs ``pip install kdtemp[ray]`` and a shared filesystem for the
  study's output folder.

Workers return results; only the driver writes the store.
"""

from __future__ import annotations

import os
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Iterator

from ..config import ConfigError
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


def train_cohort(cohort: dict[str, Any], runs_dir: str, device: str, threads: int | None,
                 progress: bool = False, diagnose: bool = False, temperatures: list[float] | None = None) -> dict:
    """Train one cohort (in whatever process runs this); return its results as plain dicts and,
    when ``diagnose`` is set, the teacher's diagnostics on the un-augmented training split."""
    import torch

    from ..config import from_dict
    from ..engine import CohortConfig, run_cohort
    from ..engine.diagnose import DEFAULT_TEMPERATURES, diagnose_teacher

    if threads:
        torch.set_num_threads(threads)
    config = from_dict(CohortConfig, {**cohort, "device": device})
    results = [result.__dict__ for result in run_cohort(config, output=runs_dir, progress=progress)]
    diagnostics = None
    if diagnose and config.teacher is not None:
        diagnostics = diagnose_teacher(config, temperatures or DEFAULT_TEMPERATURES, device=device, precision=config.precision)
    return {"results": results, "teacher": diagnostics}


def _describe(error: BaseException) -> str:
    lines = traceback.format_exception_only(type(error), error)
    return "".join(lines).strip()


class InlineExecutor:
    def __init__(self, config: ExecutorConfig, progress: bool = True) -> None:
        self.config, self.progress = config, progress

    def execute(self, tasks: list[Task]) -> Iterator[tuple[Task, dict | None, str | None]]:
        for task in tasks:
            try:
                yield task, train_cohort(task.cohort, task.runs_dir, self.config.device, self.config.threads,
                                         self.progress, task.diagnose, task.temperatures), None
            except Exception as error:  # a broken cohort is recorded; the study goes on
                yield task, None, _describe(error)


class LocalExecutor:
    """A process pool; each slot is a device (``cuda:i``) or a CPU process."""

    def __init__(self, config: ExecutorConfig) -> None:
        import torch

        self.config = config
        if config.device in ("auto", "cuda") and torch.cuda.is_available():
            gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
            self.slots = gpus[: config.workers] if config.workers else gpus
            self.threads = config.threads
        else:
            device = "cpu" if config.device == "auto" else config.device
            workers = config.workers or max(1, (os.cpu_count() or 1) // 2)
            self.slots = [device] * workers
            self.threads = config.threads or max(1, (os.cpu_count() or 1) // workers)

    def execute(self, tasks: list[Task]) -> Iterator[tuple[Task, dict | None, str | None]]:
        import multiprocessing

        pending, free, running = list(tasks), list(self.slots), {}
        with ProcessPoolExecutor(max_workers=len(self.slots), mp_context=multiprocessing.get_context("spawn")) as pool:
            while pending or running:
                while pending and free:
                    task, slot = pending.pop(0), free.pop(0)
                    future = pool.submit(train_cohort, task.cohort, task.runs_dir, slot, self.threads, False,
                                         task.diagnose, task.temperatures)
                    running[future] = (task, slot)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    task, slot = running.pop(future)
                    free.append(slot)
                    error = future.exception()
                    yield task, (None if error else future.result()), (_describe(error) if error else None)


class RayExecutor:
    """Each cohort is a Ray task with one GPU (or ``threads`` CPUs on a cluster without GPUs)."""

    def __init__(self, config: ExecutorConfig) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("executor.kind: 'ray' needs Ray; install it with: pip install 'kdtemp[ray]'") from None
        self.ray, self.config = ray, config

    def execute(self, tasks: list[Task]) -> Iterator[tuple[Task, dict | None, str | None]]:
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            kwargs: dict[str, Any] = {"address": self.config.ray_address} if self.config.ray_address else {}
            if not self.config.ray_address and self.config.workers:
                kwargs["num_cpus"] = self.config.workers * (self.config.threads or 1)
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        try:
            has_gpu = ray.cluster_resources().get("GPU", 0) > 0 and self.config.device != "cpu"
            threads = self.config.threads or 1
            options = {"num_gpus": 1, "num_cpus": threads} if has_gpu else {"num_cpus": threads}
            remote = ray.remote(**options)(train_cohort)
            device = "cuda" if has_gpu else "cpu"
            futures = {remote.remote(t.cohort, t.runs_dir, device, threads, False, t.diagnose, t.temperatures): t
                       for t in tasks}
            while futures:
                done, _ = ray.wait(list(futures), num_returns=1)
                for reference in done:
                    task = futures.pop(reference)
                    try:
                        yield task, ray.get(reference), None
                    except Exception as error:
                        yield task, None, _describe(error)
        finally:
            if started_here:
                ray.shutdown()


def make_executor(config: ExecutorConfig, progress: bool = True):
    if config.kind == "inline":
        return InlineExecutor(config, progress)
    if config.kind == "local":
        return LocalExecutor(config)
    return RayExecutor(config)
