"""One member of a cohort: its student, objective, temperature policy, optimizer and schedule.

A member owns its own random-number stream (restored around each of its steps), so what it
does is independent of which other members share the cohort: a member's trajectory equals the
same run trained alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..objectives import create_objective
from ..objectives.registry import check_parameters
from ..tasks.base import Task, TaskData, TrainingBatch
from ..temperature import create_policy
from .config import MemberConfig, OptimizerConfig
from .results import metric_key
from .runtime import Runtime


def clip_per_tensor(parameters: list[nn.Parameter], max_norm: float) -> None:
    """Clip each parameter tensor's gradient to L2 norm ``max_norm`` on its own (in place)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norms = torch.stack(torch._foreach_norm(grads))  # a few kernels in all, not a few per tensor
    factors = (max_norm / (norms + 1e-6)).clamp_(max=1.0)
    torch._foreach_mul_(grads, list(factors.unbind()))


def build_optimizer(config: OptimizerConfig, model: nn.Module, extra: list[nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW or SGD; decay on ndim >= 2 tensors and on ``extra`` parameters, none on biases/norms."""
    decay = [p for p in model.parameters() if p.ndim >= 2] + extra
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def half_cosine(total_steps: int):
    """LR multiplier ``0.5 * (1 + cos(pi * step / total_steps))`` for step 0..total-1."""
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


def phase_schedule(config: OptimizerConfig, epochs: int, length: int) -> OptimizerConfig:
    """``config``'s schedule of an ``epochs``-epoch run scaled to a phase of ``length`` epochs (a
    two-phase run's): each milestone ``m`` falls at ``floor(m * length / epochs)`` epochs into the
    phase, and the warm-up lasts ``floor(lr_warmup_epochs * length / epochs)`` epochs. With
    milestones 150 and 225 of 300, phases of 200 and 100 epochs drop at 100, 150 and 50, 75."""
    return dataclasses.replace(config, milestones=[m * length // epochs for m in config.milestones],
                               lr_warmup_epochs=config.lr_warmup_epochs * length // epochs)


def lr_multiplier(config: OptimizerConfig, epochs: int, steps_per_epoch: int):
    """The learning-rate multiplier of 0-based optimizer step ``step``.

    A linear warm-up ``(step + 1) / warmup_steps`` over ``lr_warmup_epochs``, then either the
    half-cosine over the remaining steps, or ``gamma ** k`` where ``k`` counts the milestones
    already reached: at 0-based epoch ``e = step // steps_per_epoch`` every milestone ``m <= e``
    has applied (so with milestones 150, 180, 210 the rate drops at the start of epoch 151,
    181 and 211, 1-based, as ``MultiStepLR`` stepped once per epoch does).
    """
    warmup = config.lr_warmup_epochs * steps_per_epoch
    total = epochs * steps_per_epoch
    cosine = half_cosine(max(total - warmup, 1))

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "step":
            epoch = step // steps_per_epoch
            return config.gamma ** sum(1 for m in config.milestones if m <= epoch)
        return cosine(step - warmup)

    return multiplier


@dataclass
class MemberState:
    """Progress of a member: finished epochs, per-epoch curve, status."""

    epochs_done: int = 0
    curve: list[dict] = field(default_factory=list)
    status: str = "pending"
    error: str | None = None
    seconds: float = 0.0
    temperature_trace: list[float] = field(default_factory=list)
    derived: dict = field(default_factory=dict)


class Member:
    """Runtime of one cohort member.

    A member of a two-phase objective (Annealing KD) keeps a copy of its weights at its best
    phase-1 epoch by the task's primary metric (the first best on ties, as the authors' strict
    ``>``), and at the start of phase 2 takes them back and a fresh optimizer and schedule."""

    def __init__(self, config: MemberConfig, run_id: str, task: Task, data: TaskData, runtime: Runtime) -> None:
        self.config, self.run_id, self.runtime = config, run_id, runtime
        device = runtime.device
        self.weights = config.weights()
        self.state = MemberState()
        self.steps_per_epoch = data.stream.batches_per_epoch
        self.primary, self.goal = task.primary_metric, task.primary_goal
        self.phase_one = config.phase_one_epochs  # None: one phase
        self._phase_one_best: dict | None = None  # {"epoch", "value", "model"} of the best phase-1 epoch
        # The member's own random streams, seeded with its seed: the CPU's (initialisation,
        # CPU-side draws) and, on CUDA, its device's (device-side draws), both restored for the
        # caller and carried by the member from step to step (:meth:`own_rng`).
        cuda_devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices):
            torch.random.default_generator.manual_seed(config.seed)
            for cuda_device in cuda_devices:
                with torch.cuda.device(cuda_device):
                    torch.cuda.manual_seed(config.seed)
            self.model = task.create_model(config.model, data, runtime, "student")
            self.policy = create_policy(config.temperature_policy, temperature=config.effective_temperature,
                                        dts=config.dts, ctkd_ramp_epochs=config.ctkd_ramp_epochs, device=device,
                                        samples=data.train_size,
                                        objective_params={**check_parameters(config.objective, config.objective_params),
                                                          "phase1_epochs": self.phase_one}
                                        if config.objective is not None else None)
            self.rng_state = torch.random.get_rng_state()
            self.cuda_rng_state = torch.cuda.get_rng_state(device) if cuda_devices else None
        self.student = self.model.module
        # A task whose logits are wide (a vocabulary) keeps them in the model's precision and has its
        # losses upcast a chunk of rows at a time; its DTS progress may count optimizer steps.
        self.keep_precision = task.keeps_logit_precision
        self.progress_by_step = task.progress_unit == "step"
        self._prepare_objective = task.prepare_objective
        self._data = data
        self.objective = self._create_objective(config.objective_params) if config.distills else None
        self.state.derived.update(self.model.metadata())  # e.g. the input normalisation, saved with the weights
        self.parameters = list(self.student.parameters()) + self.policy.parameters()
        self.optimizer, self.scheduler = self._optimizer_for(1)
        self._loss_sum = torch.zeros((), device=device, dtype=runtime.dtype)
        self._started = 0.0
        self.warnings: list[str] = []

    def _optimizer_for(self, phase: int):
        """A fresh optimizer and schedule for ``phase`` (1 or 2): the run's own, or for a two-phase
        run the run's schedule scaled to the phase (:func:`phase_schedule`, recorded in ``derived``)."""
        config, epochs = self.config.optimizer, self.config.epochs
        if self.phase_one is not None:
            length = self.phase_one if phase == 1 else self.config.epochs - self.phase_one
            config, epochs = phase_schedule(config, self.config.epochs, length), length
            phases = self.state.derived.setdefault("phases", [])
            del phases[phase - 1:]
            phases.append({"phase": phase, "epochs": length, "milestones": list(config.milestones),
                           "lr_warmup_epochs": config.lr_warmup_epochs})
        optimizer = build_optimizer(config, self.student, self.policy.parameters())
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(config, epochs, self.steps_per_epoch))

    def in_phase_two(self, epoch: int) -> bool:
        """Whether 1-based ``epoch`` is in a two-phase run's hard-label phase."""
        return self.phase_one is not None and epoch > self.phase_one

    def _start_phase_two(self) -> None:
        """Take back the best phase-1 weights; a fresh optimizer and schedule for phase 2."""
        best = self._phase_one_best
        if best is None:
            raise RuntimeError(f"run {self.run_id}: phase 1 recorded no {self.primary} to choose its best epoch by")
        self.student.load_state_dict(best["model"])
        self._phase_one_best = None
        self.optimizer, self.scheduler = self._optimizer_for(2)
        self.state.derived["phase_two_from"] = {"epoch": best["epoch"], self.primary: best["value"]}

    def _keep_if_best(self, epoch: int, evaluation: dict[str, float]) -> None:
        value = evaluation.get(self.primary)
        if value is None or value != value:
            return
        best = self._phase_one_best
        if best is None or (value > best["value"] if self.goal == "max" else value < best["value"]):
            self._phase_one_best = {"epoch": epoch, "value": value,
                                    "model": {k: v.detach().clone() for k, v in self.student.state_dict().items()}}

    def note(self, message: str) -> None:
        """Something the user should know about this run (printed by the driver, kept in its result)."""
        self.warnings.append(message)

    def record_environment(self, threads: int, device: str) -> None:
        """Record the CPU thread count and device the run trains with. CPU kernels reduce in a
        thread-dependent order, so a run resumed with other ones can differ slightly from an
        uninterrupted run: :meth:`restore` says so."""
        self.state.derived["threads"], self.state.derived["device"] = threads, device

    def needs_training_logits(self) -> bool:
        """Whether the objective still needs parameters computed from the teacher's logits on the
        un-augmented training split (``ls_global``'s coefficient, Energy KD's thresholds): those
        its spec computes and that are still null."""
        if self.objective is None or self.objective.spec.dataset_constants is None:
            return False
        params = {**self.objective.spec.defaults, **self.objective.params}
        return any(value is None for value in params.values())

    def bind_training_logits(self, logits: Tensor) -> None:
        """Compute those parameters from the teacher's training-split ``logits`` and bind them;
        they are recorded with the run (``derived.dataset_constants``)."""
        spec = self.objective.spec
        params = {**spec.defaults, **self.config.objective_params}
        computed = spec.dataset_constants(logits, self.config.effective_temperature, **params)
        constants = {k: v for k, v in computed.items() if params.get(k) is None}  # a value the user gave stays
        self.state.derived["dataset_constants"] = constants
        self._bind(constants)

    def _bind(self, constants: dict[str, Any]) -> None:
        self.objective = self._create_objective({**self.config.objective_params, **constants})

    def _create_objective(self, params: dict[str, Any]):
        # as the task's batches need it (e.g. applied to token rows, chunked)
        return self._prepare_objective(create_objective(self.config.objective, **params), self._data)

    @property
    def active(self) -> bool:
        return self.state.status in ("pending", "running")

    def wants(self, epoch: int) -> bool:
        return self.active and self.state.epochs_done < epoch <= self.config.epochs

    def begin_epoch(self, epoch: int) -> None:
        if self.phase_one is not None and epoch == self.phase_one + 1 == self.state.epochs_done + 1:
            self._start_phase_two()
        self.state.status = "running"
        self._loss_sum.zero_()
        self._monitored: dict[str, Tensor] = {}
        self._started = time.perf_counter()
        self.policy.begin_epoch(epoch)

    @contextlib.contextmanager
    def own_rng(self):
        """Run with this member's CPU (and current CUDA) random state, restoring the caller's."""
        device = self.runtime.device
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.random.set_rng_state(self.rng_state)
            if devices and self.cuda_rng_state is not None:
                torch.cuda.set_rng_state(self.cuda_rng_state, device)
            yield
            self.rng_state = torch.random.get_rng_state()
            if devices:
                self.cuda_rng_state = torch.cuda.get_rng_state(device)

    def train_step(self, batch: TrainingBatch, teacher_logits: Tensor | None, epoch: int) -> None:
        """Forward, loss, backward, per-tensor clipping, optimizer and schedule step, policy update.

        The batch uses the policy's current temperature; the policy moves after the step."""
        with self.own_rng():
            self.student.train()
            with self.runtime.autocast():
                logits = self.model(batch)
            loss, temperature, logits = self.loss(batch, logits, teacher_logits, epoch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.step(self.optimizer, self.parameters, loss, temperature, batch, logits, teacher_logits, epoch)

    def loss(self, batch: TrainingBatch, logits: Tensor, teacher_logits: Tensor | None,
             epoch: int) -> tuple[Tensor, Any, Tensor]:
        """This batch's loss from the student's ``logits`` (upcast unless the task keeps their
        precision), the temperature it used, and the logits as the loss saw them."""
        if not self.keep_precision:
            logits = self.runtime.upcast(logits)
        temperature = self.policy.current(batch)
        loss = logits.new_zeros(())
        phase_two = self.in_phase_two(epoch)
        if phase_two:  # a two-phase run's hard-label phase: cross-entropy alone
            loss = loss + batch.cross_entropy(logits, self.config.label_smoothing)
        elif self.weights.ce_weight:
            loss = loss + self.weights.ce_weight * batch.cross_entropy(logits, self.config.label_smoothing)
        if self.objective is not None and self.weights.kd_weight and not phase_two:
            kd = self.objective(logits, teacher_logits, batch.targets, temperature)
            loss = loss + self.weights.kd_weight * self.weights.warmup(epoch) * kd
            if self.objective.spec.monitor is not None:  # summed on the device, read once per epoch
                for name, value in self.objective.spec.monitor(logits, teacher_logits, batch.targets,
                                                               temperature).items():
                    self._monitored[name] = self._monitored.get(name, 0) + value
        return loss, temperature, logits

    def step(self, optimizer: torch.optim.Optimizer, parameters: list[nn.Parameter], loss: Tensor, temperature: Any,
             batch: TrainingBatch, logits: Tensor, teacher_logits: Tensor | None, epoch: int) -> None:
        """After the backward pass: per-tensor clipping of ``parameters``, ``optimizer``'s step at the
        schedule's rate, the schedule's step, the epoch's loss sum and the policy's update."""
        if self.config.optimizer.clip_norm is not None:
            clip_per_tensor(parameters, self.config.optimizer.clip_norm)
        if optimizer is not self.optimizer:  # a fused step: the schedule's rate of this member
            for group, own in zip(optimizer.param_groups, self.optimizer.param_groups):
                group["lr"] = own["lr"]
            optimizer.step()
            with warnings.catch_warnings():  # its schedule moves on while its own optimizer waits for the epoch's end
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
                self.scheduler.step()
        else:
            optimizer.step()
            self.scheduler.step()
        self._loss_sum += loss.detach()

        def cross_entropies(per_sample: bool = False) -> tuple[Tensor, Tensor]:
            if per_sample:
                return batch.per_sample_cross_entropy(logits), batch.per_sample_cross_entropy(teacher_logits)
            return batch.cross_entropy(logits), batch.cross_entropy(teacher_logits)

        progress = (epoch, self.config.epochs)
        if self.progress_by_step:  # optimizer steps taken / the run's total
            progress = (self.scheduler.last_epoch, self.config.epochs * self.steps_per_epoch)
        with torch.no_grad():  # the gap stays on the device: no host sync in the step
            self.policy.after_step(temperature, cross_entropies, *progress)

    def epoch_temperature(self, epoch: int) -> tuple[float | None, dict[str, float] | None]:
        """Mean temperature used over the epoch (None for a cross-entropy-only run or a two-phase
        run's hard-label phase, which use none) and, for per-sample temperatures, their
        distribution at the epoch's end; the per-step values the policy logs (DTS's) join
        ``state.temperature_trace``."""
        if not self.config.distills:
            return None, None
        mean, steps = self.policy.end_epoch()
        self.state.temperature_trace.extend(steps)
        return (None if self.in_phase_two(epoch) else mean), self.policy.epoch_summary()

    def end_epoch(self, epoch: int, evaluation: dict[str, float], train_loss: float) -> None:
        """Record the epoch with the evaluation's metrics by name; a non-finite training loss marks
        the member failed."""
        self.state.seconds += time.perf_counter() - self._started
        if not math.isfinite(train_loss):
            self.state.status = "failed"
            self.state.error = f"training loss became non-finite ({train_loss}) in epoch {epoch}"
            return
        for name, value in self._monitored.items():  # e.g. DTKD's guarded samples, one count per epoch
            self.state.derived.setdefault(name, []).append(int(value))
        temperature, distribution = self.epoch_temperature(epoch)
        record = {"epoch": epoch, "train_loss": train_loss,
                  **{metric_key("test", name): value for name, value in evaluation.items()},
                  "temperature": temperature, "lr": self.optimizer.param_groups[0]["lr"]}
        if distribution is not None:  # per-sample temperatures: their distribution at the epoch's end
            record["temperature_distribution"] = distribution
        self.state.curve.append(record)
        self.state.epochs_done = epoch
        if self.phase_one is not None and epoch <= self.phase_one:
            self._keep_if_best(epoch, evaluation)
        if epoch >= self.config.epochs:
            self.state.status = "done"

    def mean_train_loss_tensor(self) -> Tensor:
        return self._loss_sum / self.steps_per_epoch

    def checkpoint(self) -> dict:
        """Everything needed to continue this member exactly where it stands."""
        return {
            "kdtemp": {"kind": "run", "model": self.config.model.name, "run_id": self.run_id, **self.model.metadata()},
            "model": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "policy": self.policy.state_dict(),
            "phase_one_best": self._phase_one_best,
            "rng_state": self.rng_state,
            "cuda_rng_state": self.cuda_rng_state,
            "state": self.state.__dict__,
        }

    def restore(self, checkpoint: dict) -> None:
        if self.phase_one is not None and checkpoint["state"]["epochs_done"] > self.phase_one:
            self.optimizer, self.scheduler = self._optimizer_for(2)  # the checkpoint's are phase 2's
        self._phase_one_best = checkpoint.get("phase_one_best")
        self.student.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        policy = checkpoint["policy"]
        if self.policy.name == "ctkd" and checkpoint.get("learnable") is not None:
            policy = checkpoint["learnable"]  # checkpoints of earlier versions kept CTKD's theta apart
        self.policy.load_state_dict(policy)
        self.rng_state = checkpoint["rng_state"]
        if checkpoint.get("cuda_rng_state") is not None:
            self.cuda_rng_state = checkpoint["cuda_rng_state"]
        threads, device = self.state.derived.get("threads"), self.state.derived.get("device")
        self.state = MemberState(**checkpoint["state"])
        for key, value in self.model.metadata().items():  # checkpoints of older versions lack the normalisation
            self.state.derived.setdefault(key, value)
        if self.state.derived.get("dataset_constants"):  # the same teacher and data give the same values
            self._bind(self.state.derived["dataset_constants"])
        before = (self.state.derived.get("threads"), self.state.derived.get("device"))
        if before != (threads, device) and self.state.epochs_done and self.active:
            self.note(f"resumed after epoch {self.state.epochs_done} with {threads} CPU threads on {device}; epochs up "
                      f"to {self.state.epochs_done} ran with {before[0]} on {before[1]}, and kernels that reduce in a "
                      "thread-dependent order make the rest of its curve differ slightly from an uninterrupted run")
            self.state.derived.setdefault("environment_changes", []).append(
                {"after_epoch": self.state.epochs_done, "from": {"threads": before[0], "device": before[1]},
                 "to": {"threads": threads, "device": device}})
        if threads is not None:
            self.state.derived["threads"], self.state.derived["device"] = threads, device
