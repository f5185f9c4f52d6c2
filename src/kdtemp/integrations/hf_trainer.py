"""A Hugging Face ``transformers.Trainer`` that distils a causal language model with kdtemp's token
objectives and temperature policies (docs/hf-trainer.md).

This is the only kdtemp module that imports ``transformers``; ``kdtemp.integrations`` itself does not
import it.

Conventions:

* A batch is a causal-LM batch with ``labels`` (``-100`` on prompt and padding positions): SFT
  examples that carry their own ``labels``, padded by a collator that keeps them
  (``DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)``), or plain text without ``labels``,
  to which ``DataCollatorForLanguageModeling(tokenizer, mlm=False)`` gives the input ids as labels
  (every token a target). **Labels are shifted inside**: the logits at position ``i`` are scored
  against ``labels[..., i + 1]`` and the last position against nothing. A batch that carries
  ``shift_labels`` (padding-free collators) is used as is. A ``DataCollatorForLanguageModeling``
  that would overwrite the examples' own ``labels``, or that masks for a masked LM (``mlm=True``),
  is refused when the trainer is built (:func:`check_collator`).
* The loss of a micro-batch is ``ce_weight * CE + kd_weight * KD``. Both terms are **sums over the
  micro-batch's valid tokens divided by the valid-token count of the whole optimizer step** (every
  micro-batch of one gradient-accumulation cycle, Trainer's ``num_items_in_batch``), so the
  micro-batch losses add up to the mean over all the step's valid tokens: gradient accumulation
  changes the memory, never the update. Called outside a training step (evaluation, or directly
  without ``num_items_in_batch``), the loss is the mean over the batch's own valid tokens.
* ``token_kd`` is multiplied by ``T^2`` by default (``objective_params={"t_squared": False}`` turns
  it off); a registered objective keeps its own factor (``T^2`` for the KL-based ones). CE is the
  student's at ``T = 1``, against the hard next-token labels.
* The teacher is in eval mode, without gradient, on the student's device; its logits are computed
  under ``no_grad``. A teacher vocabulary larger than the student's is trimmed to it (with a
  warning): the extra rows are padding of the embedding matrix; any other mismatch is refused.
* Temperature: ``fixed``, or ``dts`` (the Dynamic Temperature Scheduler). DTS moves ``T`` once per
  optimizer step, after it, from the gap ``g = CE(student) - CE(teacher)`` at ``T = 1`` over the
  valid tokens of that step (all its micro-batches, detached, summed over processes); its progress
  counts optimizer steps, ``(global_step, max_steps)``, not epochs. The KD term is computed with
  gradient at the current ``T``. The mean ``T`` of the steps since the previous log is logged as
  ``kd_temperature``. DTS's value is not part of a checkpoint: a resumed run restarts it at ``initial``.

Gradient accumulation in transformers 5.x: for each optimizer step the Trainer fetches the step's
micro-batches with :meth:`~transformers.Trainer.get_batch_samples`, which also returns
``num_items_in_batch``, and passes that count to every ``compute_loss`` of the step;
``training_step`` then divides the loss by the number of micro-batches unless
``loss_is_scaled_for_ga`` says the loss is already normalised over the whole step. The Trainer counts
tokens only when the model's ``forward`` takes loss kwargs, and counts ``labels[..., 1:]`` only for
models whose loss type is the causal-LM loss; :class:`KDTrainer` therefore counts the step's targets
itself, by the same rule its loss uses (``get_batch_samples``), and sets
``loss_is_scaled_for_ga = True``. Across processes with ``average_tokens_across_devices`` (the
default), the count is summed over processes and the loss multiplied by the number of processes,
which the data-parallel gradient average divides out again (as the Trainer's own loss does). DTS's
temperature is a shared state: every process moves it from the same step-wide sums (reduced over
processes), so the ranks agree step by step (``tests/integrations/test_kdtrainer_processes.py``: two
gloo processes under DDP equal one process with the same global batch). Under FSDP (GPUs only: Accelerate
ignores ``fsdp`` elsewhere, which KDTrainer refuses rather than train unsharded) the student is sharded
and the teacher replicated on every process. Tensor, context and sequence parallelism, and sharded
teachers (DeepSpeed ZeRO-3, FSDP), are not supported.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sized
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback

from ..config import ConfigError
from ..objectives import TokenObjective, create_objective, get_spec
from ..objectives.token import DEFAULT_CHUNK_TOKENS, DIVERGENCES, chunked_rows, token_kd_loss
from ..temperature import POLICIES, TemperaturePolicy, get_policy
from ..temperature.dts import DTSConfig
from ..temperature.registry import PolicyInputs, require_temperature, step_driven

MINIMUM_TRANSFORMERS = "5.19"
"""The first transformers release whose ``Trainer`` has ``loss_is_scaled_for_ga`` (5.18 has not)."""

IGNORE_INDEX = -100
"""The label of a position that counts nowhere (prompt, padding), as Hugging Face writes it."""

TOKEN_KD = "token_kd"
"""The objective name of :func:`kdtemp.objectives.token_kd_loss` (a divergence chosen by ``divergence``)."""

TOKEN_KD_PARAMETERS = ("beta", "skew", "t_squared")
"""What ``objective_params`` may set for ``token_kd`` (the divergence is its own argument)."""

def policies() -> tuple[str, ...]:
    """The temperature policies :class:`KDTrainer` drives: every registered one that a training loop
    of its own can step (``PolicySpec.needs_engine`` is None: ``fixed``, ``dts``, and a plug-in
    policy that declares so)."""
    return step_driven()

LABEL_KEYS = ("labels", "shift_labels")
"""Batch entries that are targets, never passed to the models."""

Temperature = float | Tensor
KDTerm = Callable[[Tensor, Tensor, Tensor, Temperature, "int | Tensor | None"], Tensor]
"""``kd(student, teacher, targets, T, num_items) -> scalar``: logits ``[B, L, V]`` or ``[N, V]``,
``targets`` aligned with the positions (already shifted), ``-100`` where a position does not count;
the sum over valid positions divided by ``num_items`` (their count when ``None``)."""


# --------------------------------------------------------------------------------------------------
# Targets and counts


def causal_targets(labels: Tensor, shift_labels: Tensor | None = None) -> Tensor:
    """The target of every position of a causal LM: ``targets[..., i] = labels[..., i + 1]`` and
    ``-100`` at the last position; ``shift_labels``, when given, are these targets already."""
    if shift_labels is not None:
        return shift_labels
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[..., :-1] = labels[..., 1:]
    return targets


def batch_targets(inputs: Mapping[str, Any]) -> Tensor:
    """:func:`causal_targets` of a batch; ``ValueError`` when it has no ``labels``."""
    labels, shifted = inputs.get("labels"), inputs.get("shift_labels")
    if labels is None and shifted is None:
        raise ValueError("KDTrainer needs `labels` in every batch (-100 on prompt and padding positions): "
                         "examples with their own labels and DataCollatorForSeq2Seq(tokenizer, "
                         "label_pad_token_id=-100), or plain text and DataCollatorForLanguageModeling(tokenizer, "
                         "mlm=False)")
    return causal_targets(labels, shifted)


def count_targets(targets: Tensor) -> Tensor:
    """The number of positions that count (0-dim integer tensor)."""
    return (targets != IGNORE_INDEX).sum()


def _denominator(num_items: int | Tensor | None) -> int | Tensor | None:
    """``num_items`` safe to divide by: a tensor count of 0 (a step without a valid token, whose sum
    is 0 too) becomes 1, without reading the value back to the host."""
    if isinstance(num_items, Tensor):
        return num_items.clamp_min(1)
    return num_items


def _flat(logits: Tensor) -> Tensor:
    return logits.reshape(-1, logits.shape[-1])


# --------------------------------------------------------------------------------------------------
# Loss terms


def token_objective(objective: str = TOKEN_KD, objective_params: Mapping[str, Any] | None = None,
                    divergence: str = "forward_kl", chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS) -> KDTerm:
    """The KD term of ``objective`` on token rows (see :data:`KDTerm`), checked now.

    ``token_kd``: :func:`~kdtemp.objectives.token_kd_loss` with ``divergence`` and, from
    ``objective_params``, ``beta``, ``skew``, ``t_squared``. Any other name: a registered (or plug-in)
    row-wise objective with its own ``objective_params``, applied to the valid token rows with
    :func:`~kdtemp.objectives.chunked_rows` (its label is the next token). ``ValueError`` for an
    objective without a token form (``spec.no_token_form``: DIST, MLKD, ...), one that needs its own
    temperature policy (CTKD, AKD), an unknown parameter, or ``divergence`` with another objective.
    """
    params = dict(objective_params or {})
    if objective == TOKEN_KD:
        unknown = sorted(set(params) - set(TOKEN_KD_PARAMETERS))
        if unknown:
            raise ValueError(f"objective 'token_kd' has no parameter {unknown[0]!r}; allowed: "
                             f"{', '.join(TOKEN_KD_PARAMETERS)} (and the divergence argument)")
        if divergence not in DIVERGENCES:
            raise ValueError(f"divergence: unknown {divergence!r}; allowed: {', '.join(DIVERGENCES)}")
        # One call on a single row checks beta and skew now rather than at the first batch.
        token_kd_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 1.0, divergence, **params)

        def kd(student: Tensor, teacher: Tensor, targets: Tensor, temperature: Temperature,
               num_items: int | Tensor | None) -> Tensor:
            return token_kd_loss(student, teacher, targets, temperature, divergence, ignore_index=IGNORE_INDEX,
                                 chunk_tokens=chunk_tokens, num_items=_denominator(num_items), **params)

        return kd
    if divergence != "forward_kl":
        raise ValueError(f"divergence applies to objective 'token_kd' only; {objective!r} was given with "
                         f"divergence {divergence!r} (the registered 'reverse_kl', 'jsd', 'skew_kl' and "
                         "'skew_reverse_kl' name the others)")
    spec = get_spec(objective)
    if spec.no_token_form:
        raise ValueError(f"objective {objective!r} does not apply to the tokens of a language model: "
                         f"{spec.no_token_form}")
    policy = get_policy(spec.temperature_policy)
    if policy.needs_engine is not None:
        raise ValueError(f"objective {objective!r} needs the {spec.temperature_policy!r} temperature policy, "
                         f"which {policy.needs_engine}; KDTrainer drives {', '.join(policies())}")
    rows = TokenObjective(create_objective(objective, **params), chunk_tokens)

    def registered(student: Tensor, teacher: Tensor, targets: Tensor, temperature: Temperature,
                   num_items: int | Tensor | None) -> Tensor:
        flat = targets.reshape(-1)
        valid = (flat != IGNORE_INDEX).nonzero().squeeze(1)
        return rows(_flat(student), _flat(teacher), flat, temperature, valid, _denominator(num_items))

    return registered


def _cross_entropy_rows(s_rows: Tensor, t_rows: Tensor, y_rows: Tensor, temperature: Tensor) -> Tensor:
    """The sum over rows of CE(student, next token) at T = 1, in float32."""
    return F.cross_entropy(s_rows.float(), y_rows, reduction="sum")


def token_cross_entropy(logits: Tensor, targets: Tensor, num_items: int | Tensor | None = None,
                        chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS) -> Tensor:
    """The student's CE at ``T = 1`` over the valid positions of aligned ``targets``, with gradient,
    chunked: the mean over them, or their sum divided by ``num_items``."""
    flat = targets.reshape(-1)
    valid = (flat != IGNORE_INDEX).nonzero().squeeze(1)
    s = _flat(logits)
    return chunked_rows(_cross_entropy_rows, s, s, flat, 1.0, valid, chunk_tokens, _denominator(num_items))


@torch.no_grad()
def cross_entropy_sum(logits: Tensor, targets: Tensor, chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS) -> Tensor:
    """The detached *sum* of CE at ``T = 1`` over the valid positions of aligned ``targets``
    (float64, 0-dim, on the logits' device), ``chunk_tokens`` rows at a time."""
    flat = targets.reshape(-1)
    valid = (flat != IGNORE_INDEX).nonzero().squeeze(1)
    rows = _flat(logits)
    total = torch.zeros((), dtype=torch.float64, device=logits.device)
    chunk = int(chunk_tokens or valid.numel() or 1)
    for start in range(0, valid.numel(), chunk):
        index = valid[start:start + chunk]
        total += F.cross_entropy(rows[index].float(), flat[index], reduction="sum").double()
    return total


def align_vocab(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """The teacher's logits over the student's vocabulary: trimmed (with a warning) when the
    teacher's is larger, unchanged when equal; ``ValueError`` otherwise."""
    student_size, teacher_size = student_logits.shape[-1], teacher_logits.shape[-1]
    check_vocab(student_size, teacher_size)
    return teacher_logits[..., :student_size] if teacher_size > student_size else teacher_logits


def check_vocab(student_size: int | None, teacher_size: int | None) -> None:
    """Refuse a teacher vocabulary smaller than the student's; warn when it is larger (trimmed)."""
    if student_size is None or teacher_size is None or student_size == teacher_size:
        return
    if teacher_size < student_size:
        raise ValueError(f"teacher and student vocabularies differ: teacher {teacher_size} < student "
                         f"{student_size}; they must share a tokenizer")
    warnings.warn(f"the teacher's vocabulary ({teacher_size}) is larger than the student's ({student_size}); "
                  "its logits are trimmed to the student's first tokens", stacklevel=2)


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, kd: KDTerm,
                      temperature: Temperature = 1.0, *, kd_weight: float = 1.0, ce_weight: float = 0.0,
                      num_items: int | Tensor | None = None, chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
                      shift_labels: Tensor | None = None) -> Tensor:
    """``ce_weight * CE + kd_weight * KD`` of one (micro-)batch, from its logits.

    ``student_logits``, ``teacher_logits``: ``[B, L, V]`` (the teacher's trimmed to the student's
    vocabulary when larger). ``labels``: ``[B, L]`` as the batch gives them, ``-100`` where a token is
    no target; **shifted inside** (:func:`causal_targets`; ``shift_labels`` are used as is). Both
    terms: the sum over valid targets divided by ``num_items``, or their mean when ``None``. ``kd``:
    from :func:`token_objective`. Masked positions (and the last one) get exactly zero gradient.
    """
    return target_loss(student_logits, teacher_logits, causal_targets(labels, shift_labels), kd, temperature,
                       kd_weight=kd_weight, ce_weight=ce_weight, num_items=num_items, chunk_tokens=chunk_tokens)


def target_loss(student_logits: Tensor, teacher_logits: Tensor, targets: Tensor, kd: KDTerm,
                temperature: Temperature = 1.0, *, kd_weight: float = 1.0, ce_weight: float = 0.0,
                num_items: int | Tensor | None = None, chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS) -> Tensor:
    """:func:`distillation_loss` with ``targets`` already aligned with the positions (shifted)."""
    teacher_logits = align_vocab(student_logits, teacher_logits.detach())
    loss = student_logits.new_zeros((), dtype=torch.float32)
    if kd_weight:
        loss = loss + kd_weight * kd(student_logits, teacher_logits, targets, temperature, num_items)
    if ce_weight:
        loss = loss + ce_weight * token_cross_entropy(student_logits, targets, num_items, chunk_tokens)
    return loss


# --------------------------------------------------------------------------------------------------
# Temperature


def dts_settings(dts: Any = None) -> DTSConfig:
    """Checked DTS settings (:class:`kdtemp.temperature.dts.DTSConfig`) from ``None`` (its defaults,
    the paper's same-family 8/4/8), a mapping of its fields, or a ``DTSConfig``; ``ValueError``
    otherwise."""
    if dts is None:
        settings = DTSConfig()
    elif isinstance(dts, DTSConfig):
        settings = dts
    elif isinstance(dts, Mapping):
        fields = ("initial", "minimum", "maximum", "momentum")
        unknown = sorted(set(dts) - set(fields))
        if unknown:
            raise ValueError(f"dts has no field {unknown[0]!r}; allowed: {', '.join(fields)}")
        settings = DTSConfig(**dts)
    else:
        raise ValueError(f"dts must be a DTSConfig or a mapping of its fields; got {type(dts).__name__}")
    try:
        settings.validate()
    except ConfigError as error:
        raise ValueError(str(error)) from None
    return settings


def make_policy(kind: str = "fixed", temperature: float = 1.0, dts: Any = None) -> TemperaturePolicy:
    """The registered temperature policy ``kind`` (one of :func:`policies`), made as the engine makes
    a member's: ``temperature`` for a fixed one (in kdtemp's range), ``dts`` settings
    (:func:`dts_settings`) for one that reads them (``dts``, which ignores ``temperature``)."""
    allowed = policies()
    if kind not in allowed:
        why = f" ({POLICIES[kind].needs_engine})" if kind in POLICIES else ""
        raise ValueError(f"temperature_policy: {'unknown' if not why else 'cannot drive'} {kind!r}{why}; "
                         f"allowed: {', '.join(allowed)}")
    spec = get_policy(kind)
    if spec.fixed:
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
            raise ValueError(f"temperature must be a number; got {temperature!r}")
        try:
            require_temperature(float(temperature), "temperature")
        except ConfigError as error:
            raise ValueError(str(error)) from None
    settings = dts_settings(dts) if "dts" in spec.settings else None
    return spec.create(PolicyInputs(temperature=float(temperature), dts=settings))


class StepTemperature:
    """Drives a temperature policy once per optimizer step (interface.py's calling order).

    :meth:`current` is the value every micro-batch of the step uses; :meth:`record` adds a
    micro-batch's detached CE sums and token count; :meth:`step_end` (after the optimizer step) hands
    the policy the step's token-weighted mean CEs with progress ``(step, total)``; :meth:`interval_mean`
    is the mean ``T`` of the steps since its previous call (the policy's ``end_epoch``).
    """

    def __init__(self, policy: TemperaturePolicy) -> None:
        self.policy = policy
        self.needs_gap = get_policy(policy.name).uses_gap
        self._used: Temperature | None = None
        self._sums: Tensor | None = None  # [CE(student) sum, CE(teacher) sum, tokens], float64
        policy.begin_epoch(1)

    def current(self) -> Temperature:
        """The temperature of the current step: a float, or a 0-dim float32 tensor (DTS on the device)."""
        value = self.policy.current()
        return value.detach().to(torch.float32) if isinstance(value, Tensor) else float(value)

    def record(self, used: Temperature, student_ce_sum: Tensor | None = None, teacher_ce_sum: Tensor | None = None,
               tokens: Tensor | None = None) -> None:
        """One training micro-batch: the temperature it used and, for DTS, its detached CE sums."""
        self._used = used
        if student_ce_sum is None:
            return
        sums = torch.stack([student_ce_sum.double(), teacher_ce_sum.double(), tokens.double()])
        self._sums = sums if self._sums is None else self._sums + sums

    def step_end(self, step: int, total: int, reduce: Callable[[Tensor], Tensor] = lambda t: t) -> None:
        """After optimizer step ``step`` of ``total``: the policy's ``after_step``. ``reduce`` sums the
        step's CE sums over processes. A step without a valid token leaves DTS where it is."""
        used, sums = self._used, self._sums
        self._used, self._sums = None, None
        if used is None:
            return
        if not self.needs_gap:
            self.policy.after_step(used, _no_cross_entropies, step, total)
            return
        if sums is None:
            return
        sums = reduce(sums)
        if float(sums[2]) == 0:
            return
        self.policy.after_step(used, lambda: (sums[0] / sums[2], sums[1] / sums[2]), step, total)

    def interval_mean(self) -> float:
        """The mean temperature of the steps since the previous call (the current value if none)."""
        mean, _ = self.policy.end_epoch()
        return float(mean)


def _no_cross_entropies() -> tuple[Tensor, Tensor]:
    raise RuntimeError("this temperature policy does not use the CE gap")


class _TemperatureCallback(TrainerCallback):
    """Calls :meth:`StepTemperature.step_end` when the Trainer ends an optimizer step."""

    def __init__(self, temperature: StepTemperature, reduce: Callable[[Tensor], Tensor]) -> None:
        self.kd_temperature, self.reduce = temperature, reduce

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.kd_temperature.step_end(state.global_step, state.max_steps, self.reduce)


# --------------------------------------------------------------------------------------------------
# The Trainer


def _logits(outputs: Any) -> Tensor:
    return outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]


def _vocab_size(model: nn.Module) -> int | None:
    """The rows of the model's output embedding, else its config's ``vocab_size`` (``None``: unknown)."""
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    weight = getattr(head, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() == 2:
        return int(weight.shape[0])
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    return int(size) if isinstance(size, int) else None


def _device_of(model: nn.Module | None) -> torch.device | None:
    parameter = next(model.parameters(), None) if model is not None else None
    return parameter.device if parameter is not None else None


def prepare_teacher(teacher: nn.Module, device: torch.device | None) -> nn.Module:
    """The teacher in eval mode, without gradient, on ``device`` (unless already dispatched with a
    ``device_map``)."""
    teacher.eval()
    teacher.requires_grad_(False)
    if device is not None and getattr(teacher, "hf_device_map", None) is None:
        teacher.to(device)
    return teacher


def _first_example(dataset: Any) -> Any:
    """The first example of a map-style dataset (``None``: no dataset, an iterable one, or an empty
    one). A dataset with a length is indexed by position, as the Trainer's sampler indexes it."""
    if not isinstance(dataset, Sized) or isinstance(dataset, torch.utils.data.IterableDataset) or len(dataset) == 0:
        return None
    return dataset[0]


def check_collator(data_collator: Any, data: tuple[Any, ...] = ()) -> None:
    """Refuse a ``DataCollatorForLanguageModeling`` (or subclass) that would silently train on other
    targets than the examples': with ``mlm=True`` (masked-LM inputs and labels, never a causal LM's),
    or on datasets of ``data`` whose examples carry ``labels`` (it replaces them by the input ids,
    ``-100`` only where an input is the pad token: the prompt's ``-100`` are lost, and EOS is masked
    too when ``pad_token`` is ``eos_token``). Only the first example of each map-style dataset is
    looked at; iterable datasets and other collators are not checked. ``ValueError`` naming the fix."""
    if not isinstance(data_collator, DataCollatorForLanguageModeling):
        return
    if data_collator.mlm:
        raise ValueError("data_collator: DataCollatorForLanguageModeling with mlm=True makes masked-LM inputs "
                         "and labels; KDTrainer distils a causal LM: use DataCollatorForSeq2Seq(tokenizer, "
                         "label_pad_token_id=-100) for examples with labels, or mlm=False for plain text")
    for dataset in data:
        example = _first_example(dataset)
        if isinstance(example, Mapping) and "labels" in example:
            raise ValueError("data_collator: DataCollatorForLanguageModeling replaces the examples' `labels` by "
                             "their input ids (-100 only at the pad token, so the prompt's -100 are lost); use "
                             "DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100), which pads labels with "
                             "-100 and keeps them, or drop the labels column to train on every token")


def _check_weights(kd_weight: float, ce_weight: float) -> None:
    for name, value in (("kd_weight", kd_weight), ("ce_weight", ce_weight)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    if kd_weight == 0 and ce_weight == 0:
        raise ValueError("kd_weight and ce_weight are both 0: nothing to train")


class KDTrainer(Trainer):
    """``transformers.Trainer`` whose loss distils ``teacher_model`` into the model being trained.

    Loss per micro-batch: ``ce_weight * CE(student) + kd_weight * KD(student, teacher, T)``, both over
    the valid next-token targets (labels shifted inside), summed and divided by the valid-token count
    of the whole optimizer step (module docstring). All other arguments are the Trainer's; the
    examples carry ``labels`` (``-100`` on the prompt) and the collator pads them with ``-100``
    (``DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)``), or the examples are plain text
    and ``DataCollatorForLanguageModeling(tokenizer, mlm=False)`` makes the labels
    (:func:`check_collator` refuses the mixes that would lose the prompt's ``-100``).

    Args:
        teacher_model: the teacher (a causal LM with the student's tokenizer); put in eval mode,
            frozen, and moved to the student's device.
        objective: ``"token_kd"`` (:func:`~kdtemp.objectives.token_kd_loss`) or any registered
            row-wise objective (``kd``, ``dkd``, ``reverse_kl``, ``jsd``, ...); those without a token
            form (``dist``, ``mlkd``, ...) are refused.
        objective_params: the objective's hyper-parameters (``token_kd``: ``beta``, ``skew``,
            ``t_squared``).
        divergence: ``token_kd``'s divergence (``forward_kl``, ``reverse_kl``, ``jsd``,
            ``skew_forward_kl``, ``skew_reverse_kl``).
        temperature: the fixed temperature (ignored by DTS).
        temperature_policy: a registered policy a loop of its own can step (:func:`policies`: ``"fixed"``,
            ``"dts"``, or a plug-in one).
        dts: DTS settings, a :class:`kdtemp.temperature.dts.DTSConfig` or a mapping of its fields
            (default: 8/4/8, momentum 0.9).
        kd_weight, ce_weight: the weights of the two terms (>= 0, not both 0).
        chunk_tokens: token rows per chunk of the loss (memory; ``None``: all at once).
    """

    loss_is_scaled_for_ga = True  # compute_loss divides by the step's token count itself

    def __init__(self, *args: Any, teacher_model: nn.Module, objective: str = TOKEN_KD,
                 objective_params: Mapping[str, Any] | None = None, divergence: str = "forward_kl",
                 temperature: float = 1.0, temperature_policy: str = "fixed", dts: Any = None,
                 kd_weight: float = 1.0, ce_weight: float = 0.0, chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
                 **kwargs: Any) -> None:
        if not hasattr(Trainer, "loss_is_scaled_for_ga"):
            raise RuntimeError("KDTrainer needs a transformers Trainer with `loss_is_scaled_for_ga` "
                               f"(transformers >= {MINIMUM_TRANSFORMERS})")
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("KDTrainer computes its own loss; compute_loss_func cannot be combined with it")
        if chunk_tokens is not None and (not isinstance(chunk_tokens, int) or chunk_tokens < 1):
            raise ValueError(f"chunk_tokens must be an integer >= 1 or None; got {chunk_tokens!r}")
        _check_weights(kd_weight, ce_weight)
        self.kd_term = token_objective(objective, objective_params, divergence, chunk_tokens)
        self.kd_weight, self.ce_weight, self.chunk_tokens = float(kd_weight), float(ce_weight), chunk_tokens
        self.kd_temperature = StepTemperature(make_policy(temperature_policy, temperature, dts))
        super().__init__(*args, **kwargs)
        if self.args.label_smoothing_factor:
            raise ValueError("label_smoothing_factor is not supported by KDTrainer (its CE uses the hard labels)")
        if self.args.fsdp and not self.is_fsdp_enabled:  # Accelerate shards only on GPUs; elsewhere it trains DDP
            raise ValueError(f"fsdp: {self.args.fsdp!r} asks for sharding, "
                             f"but Accelerate enables FSDP only on GPUs ({self.accelerator.distributed_type} here) and "
                             "would train unsharded instead; leave fsdp unset here, or launch on GPUs")
        evaluation = self.eval_dataset.values() if isinstance(self.eval_dataset, Mapping) else (self.eval_dataset,)
        check_collator(self.data_collator, (self.train_dataset, *evaluation))
        self.teacher_model = prepare_teacher(teacher_model, _device_of(self.model) or self.args.device)
        check_vocab(_vocab_size(self.model), _vocab_size(self.teacher_model))
        self.add_callback(_TemperatureCallback(self.kd_temperature, self._sum_over_processes))

    # -- token counts --------------------------------------------------------------------------

    @property
    def _counts_over_processes(self) -> bool:
        """Whether the step's token count is the sum over every process's micro-batches."""
        return bool(self.args.average_tokens_across_devices) and self.args.world_size > 1

    def _sum_over_processes(self, tensor: Tensor) -> Tensor:
        if self.accelerator.num_processes > 1:
            return self.accelerator.reduce(tensor, reduction="sum")
        return tensor

    def get_batch_samples(self, epoch_iterator: Iterator, num_batches: int,
                          device: torch.device) -> tuple[list, Tensor | None]:
        """The step's micro-batches (the Trainer's), with the count of their valid next-token targets
        by this trainer's rule (labels shifted, or ``shift_labels``), summed over processes when
        tokens are averaged across devices."""
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not batches or not all("labels" in b or "shift_labels" in b for b in batches):
            return batches, None
        count = sum(count_targets(batch_targets(b)).to(device) for b in batches)
        if self._counts_over_processes:
            count = self.accelerator.gather(count).sum()
        return batches, count

    # -- the loss -------------------------------------------------------------------------------

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Tensor | int | None = None) -> Tensor | tuple[Tensor, Any]:
        """``ce_weight * CE + kd_weight * KD`` of a micro-batch (class docstring). In training,
        divided by ``num_items_in_batch`` (the step's valid-token count); otherwise a mean over the
        batch's own valid tokens. ``return_outputs``: also the student's outputs."""
        targets = batch_targets(inputs)
        forward = {key: value for key, value in inputs.items() if key not in LABEL_KEYS}
        outputs = model(**forward)
        student_logits = _logits(outputs)
        if self.teacher_model.training:
            self.teacher_model.eval()
        with torch.no_grad():
            teacher_logits = align_vocab(student_logits, _logits(self.teacher_model(**forward)))
        training = model.training
        num_items = num_items_in_batch if training else None
        temperature = self.kd_temperature.current()
        loss = target_loss(student_logits, teacher_logits, targets, self.kd_term, temperature,
                           kd_weight=self.kd_weight, ce_weight=self.ce_weight, num_items=num_items,
                           chunk_tokens=self.chunk_tokens)
        if training:
            self._record_step(temperature, student_logits, teacher_logits, targets)
            if num_items is not None and self._counts_over_processes:
                loss = loss * self.accelerator.num_processes  # the gradient average divides it out
        return (loss, outputs) if return_outputs else loss

    def _record_step(self, temperature: Temperature, student_logits: Tensor, teacher_logits: Tensor,
                     targets: Tensor) -> None:
        if not self.kd_temperature.needs_gap:
            self.kd_temperature.record(temperature)
            return
        self.kd_temperature.record(temperature, cross_entropy_sum(student_logits.detach(), targets, self.chunk_tokens),
                                cross_entropy_sum(teacher_logits, targets, self.chunk_tokens), count_targets(targets))

    # -- logging --------------------------------------------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """The Trainer's log, with ``kd_temperature``: the mean T of the optimizer steps since the
        previous log (the current T when none)."""
        super().log({**logs, "kd_temperature": self.kd_temperature.interval_mean()}, start_time)
