"""Token-level distillation for language models (objectives.md section 14).

:func:`token_kd_loss` takes logits ``[B, L, V]`` (or ``[N, V]``) with labels already aligned with
their positions (the causal shift happens before the call); a position counts only where its label
is not ``ignore_index``, so prompt and padding tokens contribute nothing, neither value nor
gradient. With ``p = softmax(t / T)`` (teacher) and ``q = softmax(s / T)`` (student), per token:

* ``forward_kl``: ``KL(p || q)`` (the ``kd`` objective on token rows);
* ``reverse_kl``: ``KL(q || p)``;
* ``jsd``: the generalized Jensen-Shannon divergence of TRL's GKD, ``M = beta p + (1 - beta) q``
  (mixed in log space), ``beta KL(p || M) + (1 - beta) KL(q || M)``; ``beta = 0`` and ``beta = 1``
  are exactly the forward and the reverse KL (the mixed form degenerates to 0 there);
* ``skew_forward_kl`` (DistiLLM): ``KL(p || skew p + (1 - skew) q)``;
* ``skew_reverse_kl``: ``KL(q || (1 - skew) p + skew q)``.

Values are true divergences: torchtune's ``ForwardKLLoss`` and DistiLLM's ``forward_kl`` /
``skewed_forward_kl`` return soft cross-entropies, larger by the teacher's entropy (a constant of
the student), with the same gradient. The value is the mean over valid tokens (or the sum divided
by ``num_items``, for gradient accumulation), times ``T^2`` by default.

Memory: only the valid rows are used, ``chunk_tokens`` at a time, in float32 (:func:`chunked_rows`).
The forward pass keeps nothing per chunk and the backward pass recomputes each chunk's gradient, so
the extra memory is a few ``[chunk, V]`` float32 buffers besides the gradient of the logits itself.
The same routine applies every row-wise objective to token rows; the batch-coupled ones (whose value
couples the rows of a batch or needs dataset-level constants) declare ``token_form=False`` in their
registration and are refused for a vocabulary before any work.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ._common import Temperature, check_temperature, kl_from_log_probs, scaled_log_softmax
from .registry import ParameterRule, Preset, register

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd", "skew_forward_kl", "skew_reverse_kl")
DEFAULT_CHUNK_TOKENS = 1024

RowLoss = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
"""``fn(student_rows, teacher_rows, target_rows, temperature) -> sum over the rows`` (a scalar)."""


def _mixture(log_a: Tensor, log_b: Tensor, weight_a: float) -> Tensor:
    """``log(weight_a * a + (1 - weight_a) * b)`` from log-probabilities, by ``logsumexp``."""
    if weight_a <= 0.0:
        return log_b
    if weight_a >= 1.0:
        return log_a
    return torch.logsumexp(torch.stack([log_a + math.log(weight_a), log_b + math.log1p(-weight_a)]), dim=0)


def token_divergence(student: Tensor, teacher: Tensor, temperature: Temperature, divergence: str = "forward_kl",
                     beta: float = 0.5, skew: float = 0.1) -> Tensor:
    """The per-row divergence ``[N]`` of logits ``[N, V]`` at ``temperature`` (no ``T^2``), in float32."""
    return log_prob_divergence(scaled_log_softmax(teacher, temperature), scaled_log_softmax(student, temperature),
                               divergence, beta, skew)


def log_prob_divergence(log_p: Tensor, log_q: Tensor, divergence: str = "forward_kl", beta: float = 0.5,
                        skew: float = 0.1) -> Tensor:
    """The per-row divergence ``[N]`` between the teacher's log-probabilities ``log_p`` and the
    student's ``log_q`` (``[N, C]``, any ``C`` categories: a vocabulary, or a cache's top k and tail)."""
    if divergence == "forward_kl":
        return kl_from_log_probs(log_p, log_q)
    if divergence == "reverse_kl":
        return kl_from_log_probs(log_q, log_p)
    if divergence == "jsd":
        if beta == 0.0:
            return kl_from_log_probs(log_p, log_q)
        if beta == 1.0:
            return kl_from_log_probs(log_q, log_p)
        log_m = _mixture(log_p, log_q, beta)
        return beta * kl_from_log_probs(log_p, log_m) + (1.0 - beta) * kl_from_log_probs(log_q, log_m)
    if divergence == "skew_forward_kl":
        return kl_from_log_probs(log_p, _mixture(log_p, log_q, skew))
    if divergence == "skew_reverse_kl":
        return kl_from_log_probs(log_q, _mixture(log_p, log_q, 1.0 - skew))
    raise ValueError(f"divergence: unknown {divergence!r}; allowed: {', '.join(DIVERGENCES)}")


RowGradient = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
"""``grad(student_rows, teacher_rows, target_rows, temperature)``: the gradient of a :data:`RowLoss`
with respect to the student rows, in closed form (a few ``[chunk, V]`` buffers, computed in place)."""


def _kl_gradient(divergence: str, t_squared: bool) -> RowGradient | None:
    """The closed-form gradient of ``T^2 KL`` (forward or reverse) per row, or None for the others.

    With ``q = softmax(s / T)``, ``p = softmax(t / T)``: ``d KL(p || q) / ds = (q - p) / T`` and
    ``d KL(q || p) / ds = q * (d - sum(q * d)) / T`` with ``d = log q - log p``."""
    if divergence not in ("forward_kl", "reverse_kl"):
        return None

    def gradient(s: Tensor, t: Tensor, y: Tensor, T: Tensor) -> Tensor:
        factor = T if t_squared else 1.0 / T
        log_q = scaled_log_softmax(s, T)
        log_p = scaled_log_softmax(t, T)
        if divergence == "forward_kl":
            return log_q.exp_().sub_(log_p.exp_()).mul_(factor)
        q = log_q.exp()
        d = log_q.sub_(log_p)  # log q - log p, in place
        kl = torch.linalg.vecdot(q, d).unsqueeze(1)
        return d.sub_(kl).mul_(q).mul_(factor)

    return gradient


def _chunks(rows: Tensor | None, count: int, chunk: int):
    """The index of each chunk: a slice (a view, no copy) when every row counts, else the rows'
    positions (a gather)."""
    if rows is None:
        for start in range(0, count, chunk):
            yield slice(start, start + chunk)
    else:
        for start in range(0, rows.numel(), chunk):
            yield rows[start:start + chunk]


class _ChunkedRows(torch.autograd.Function):
    """``sum over chunks of fn(rows) / denominator``; forward keeps no graph, backward recomputes
    each chunk's gradient (for the student rows and, when it needs one, the temperature): in closed
    form when a ``gradient`` is given and the temperature needs none, else by autograd."""

    @staticmethod
    def forward(ctx, fn, gradient, rows, chunk, denominator, student, teacher, targets, temperature):  # type: ignore[override]
        wide = torch.float64 if student.dtype == torch.float64 else torch.float32  # float64 stays float64
        total = torch.zeros((), dtype=wide, device=student.device)
        with torch.no_grad():
            for part in _chunks(rows, student.shape[0], chunk):
                total = total + fn(student[part], teacher[part], targets[part], temperature).to(wide)
        ctx.fn, ctx.gradient, ctx.chunk, ctx.denominator = fn, gradient, chunk, denominator
        ctx.teacher = None if isinstance(teacher, torch.Tensor) else teacher  # a teacher cache's rows
        ctx.save_for_backward(rows, student, teacher if ctx.teacher is None else None, targets, temperature)
        return total / denominator

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        rows, student, teacher, targets, temperature = ctx.saved_tensors
        teacher = teacher if ctx.teacher is None else ctx.teacher
        want_student, want_temperature = ctx.needs_input_grad[5], ctx.needs_input_grad[8]
        grad_student = torch.zeros_like(student) if want_student else None
        grad_temperature = torch.zeros_like(temperature) if want_temperature else None
        scale = grad / ctx.denominator
        closed_form = ctx.gradient is not None and not want_temperature
        for part in _chunks(rows, student.shape[0], ctx.chunk):
            if closed_form and want_student:
                with torch.no_grad():
                    grad_student[part] = ctx.gradient(student[part], teacher[part], targets[part],
                                                      temperature.detach()).mul_(scale).to(student.dtype)
                continue
            with torch.enable_grad():
                rows_of = student[part].detach().requires_grad_(want_student)
                value = temperature.detach().requires_grad_(want_temperature)
                loss = ctx.fn(rows_of, teacher[part], targets[part], value) * scale
                inputs = [t for t, wanted in ((rows_of, want_student), (value, want_temperature)) if wanted]
                grads = list(torch.autograd.grad(loss, inputs))
            if want_student:
                grad_student[part] = grads.pop(0).to(student.dtype)
            if want_temperature:
                grad_temperature += grads.pop(0)
        return None, None, None, None, None, grad_student, None, None, grad_temperature


def chunked_rows(fn: RowLoss, student: Tensor, teacher: Tensor, targets: Tensor, temperature: Temperature,
                 rows: Tensor | None = None, chunk_tokens: int | None = None,
                 denominator: float | Tensor | None = None, gradient: RowGradient | None = None) -> Tensor:
    """``sum_chunks fn(student[rows], teacher[rows], targets[rows], T) / denominator``.

    ``student``, ``teacher``: ``[N, V]`` (the teacher may instead be rows of a teacher cache, anything
    with ``detach()`` and row indexing that ``fn`` reads); ``targets``: ``[N]``; ``rows``: the rows that count (all by
    default); ``denominator``: ``len(rows)`` by default (then the value is a mean over rows; 0 rows
    give 0). ``fn`` returns the *sum* of its rows' losses. ``temperature`` may be a tensor that
    requires gradient (CTKD's), which then receives it. ``gradient``: ``fn``'s gradient in closed
    form (used while the temperature needs none), else the backward pass differentiates ``fn``.
    """
    count = student.shape[0] if rows is None else rows.numel()
    if denominator is None:
        denominator = count
    if isinstance(denominator, (int, float)) and denominator == 0 or count == 0:
        return student.sum() * 0.0  # no valid token: 0, with a (zero) gradient path
    chunk = int(chunk_tokens or count)
    if chunk < 1:
        raise ValueError(f"chunk_tokens must be >= 1; got {chunk_tokens}")
    value = temperature if isinstance(temperature, Tensor) else torch.tensor(float(temperature), device=student.device)
    return _ChunkedRows.apply(fn, gradient, rows, chunk, denominator, student, teacher.detach(), targets, value)


def _flatten(logits: Tensor) -> Tensor:
    if logits.dim() == 3:
        return logits.reshape(-1, logits.shape[-1])
    if logits.dim() == 2:
        return logits
    raise ValueError(f"token logits must be [B, L, V] or [N, V]; got {tuple(logits.shape)}")


def token_kd_loss(student: Tensor, teacher: Tensor, labels: Tensor, temperature: Temperature = 1.0,
                  divergence: str = "forward_kl", beta: float = 0.5, skew: float = 0.1, ignore_index: int = -100,
                  t_squared: bool = True, chunk_tokens: int | None = None, num_items: int | Tensor | None = None) -> Tensor:
    """Token-level distillation loss (module docstring): the mean over valid tokens of the chosen
    divergence at ``temperature``, times ``T^2`` when ``t_squared``.

    Args:
        student, teacher: logits ``[B, L, V]`` or ``[N, V]`` (any float dtype; each chunk is upcast
            to float32). The teacher's carry no gradient.
        labels: ``[B, L]`` or ``[N]``, aligned with the logits' positions; ``ignore_index`` marks
            positions that do not count (prompt, padding).
        temperature: ``T`` (float or 0-dim tensor; a tensor that requires gradient receives it).
        divergence: one of ``forward_kl``, ``reverse_kl``, ``jsd``, ``skew_forward_kl``, ``skew_reverse_kl``.
        beta: the JSD's mixing weight of the teacher, in [0, 1].
        skew: DistiLLM's skew, in [0, 1) (0.1 by default; at 1 the mixture is the first distribution and
            the divergence is 0 whatever the student).
        chunk_tokens: rows per chunk (``None``: all valid rows at once).
        num_items: divide the sum by this instead of the valid-token count (the tokens of every
            micro-batch of one optimizer step, for gradient accumulation).
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence: unknown {divergence!r}; allowed: {', '.join(DIVERGENCES)}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1]; got {beta}")
    if not 0.0 <= skew < 1.0:
        raise ValueError(f"skew must be in [0, 1); got {skew}")
    check_temperature(temperature)
    s, t = _flatten(student), _flatten(teacher)
    flat = labels.reshape(-1)
    if s.shape != t.shape or flat.shape[0] != s.shape[0]:
        raise ValueError(f"student {tuple(student.shape)}, teacher {tuple(teacher.shape)} and labels "
                         f"{tuple(labels.shape)} do not align")
    rows = (flat != ignore_index).nonzero().squeeze(1)
    denominator = rows.numel() if num_items is None else num_items
    if rows.numel() == flat.numel():
        rows = None  # every position counts: chunks are views

    return chunked_rows(divergence_rows(divergence, beta, skew, t_squared), s, t, flat, temperature, rows, chunk_tokens,
                        denominator, _kl_gradient(divergence, t_squared))


def divergence_rows(divergence: str, beta: float = 0.5, skew: float = 0.1, t_squared: bool = True) -> RowLoss:
    """The chosen divergence as the sum over a chunk's rows (times ``T^2`` when ``t_squared``)."""

    def fn(s_rows: Tensor, t_rows: Tensor, y_rows: Tensor, T: Tensor) -> Tensor:
        if divergence in ("forward_kl", "reverse_kl") and not torch.is_grad_enabled():
            per_token = _kl_value(s_rows, t_rows, T, divergence == "reverse_kl")
        else:
            per_token = token_divergence(s_rows, t_rows, T, divergence, beta, skew)
        return (per_token * (T * T if t_squared else 1.0)).sum()

    return fn


def _kl_value(s: Tensor, t: Tensor, T: Tensor, reverse: bool) -> Tensor:
    """Per-row ``KL(p || q)`` (or ``KL(q || p)``) without gradient, in place: three ``[chunk, V]``
    buffers. A probability of 0 contributes 0 (``0 * -inf`` is taken as 0), as everywhere."""
    log_a, log_b = scaled_log_softmax(t, T), scaled_log_softmax(s, T)
    if reverse:
        log_a, log_b = log_b, log_a
    a = log_a.exp()
    difference = log_a.sub_(log_b).nan_to_num_(nan=0.0, posinf=float("inf"), neginf=-torch.finfo(log_a.dtype).max)
    return torch.linalg.vecdot(a, difference)


def token_form(name: str, params: dict[str, Any]) -> tuple[RowLoss, RowGradient | None] | None:
    """The registered objective ``name`` as a token divergence with a closed-form gradient (``kd``
    is the forward KL, ``reverse_kl`` the reverse one), or None for any other objective."""
    divergence = {"kd": "forward_kl", "reverse_kl": "reverse_kl"}.get(name)
    if divergence is None or params:
        return None
    return divergence_rows(divergence), _kl_gradient(divergence, True)


def objective_rows(objective: Callable[[Tensor, Tensor, Tensor, Any], Tensor]) -> RowLoss:
    """A row-wise objective (a batch mean over rows) as the *sum* over the rows of a chunk."""

    def fn(s_rows: Tensor, t_rows: Tensor, y_rows: Tensor, T: Tensor) -> Tensor:
        return objective(s_rows, t_rows, y_rows, T) * s_rows.shape[0]

    return fn


class TokenObjective:
    """A registered row-wise objective applied to token rows ``chunk_tokens`` at a time, with the
    ``spec``, ``params`` and ``name`` of the objective it wraps. The forward and reverse KL take their
    gradient in closed form (:func:`token_form`: fewer ``[chunk, V]`` buffers); any other row-wise
    objective is differentiated chunk by chunk. The one way kdtemp applies an objective to the tokens
    of a language model: its causal-LM task and its Hugging Face ``KDTrainer`` both call it.

    ``obj(student, teacher, targets, T, rows=None, denominator=None)``: logits ``[N, V]``, targets
    ``[N]``; ``rows`` the rows that count (all by default) and ``denominator`` what their summed loss
    is divided by (their count by default), as :func:`chunked_rows` takes them. ``rows``: another form of
    the objective's rows (a teacher cache's, :func:`~kdtemp.objectives.teacher_cache.cached_token_objective`),
    differentiated chunk by chunk.
    """

    def __init__(self, objective: Any, chunk_tokens: int | None, rows: RowLoss | None = None) -> None:
        self.inner, self.chunk_tokens = objective, chunk_tokens
        self.spec, self.params = objective.spec, objective.params
        if rows is not None:
            self._rows, self._gradient = rows, None
        else:
            self._rows, self._gradient = (token_form(objective.name, dict(objective.params))
                                          or (objective_rows(objective), None))

    @property
    def name(self) -> str:
        return self.inner.name

    def __call__(self, student: Tensor, teacher: Tensor, targets: Tensor, temperature: Any,
                 rows: Tensor | None = None, denominator: float | Tensor | None = None) -> Tensor:
        return chunked_rows(self._rows, student, teacher, targets, temperature, rows, self.chunk_tokens,
                            denominator, gradient=self._gradient)


# The divergences other than the forward KL (``kd``) as registered objectives: usable on any rows
# (token rows of a language model, or the class rows of an image batch).
_NO_WEIGHTS = Preset(0.0, 1.0, 0, None)
_BETA = ParameterRule("number", 0.0, 1.0)
# a skew of 1 mixes the divergence's second distribution away entirely: KL(p || p) = 0, no gradient
_SKEW_F = ParameterRule("number", 0.0, 1.0, high_open=True)
_SKEW_R = ParameterRule("number", 0.0, 1.0, high_open=True)


@register("reverse_kl", summary="reverse KL, T^2 KL(p_s || p_t) (mode-seeking; MiniLLM's divergence)",
          official=_NO_WEIGHTS, display_name="RKL", uses_label=False,
          notes="No official preset of its own: teacher matching only.")
def reverse_kl_objective(s: Tensor, t: Tensor, y: Tensor, T: Any) -> Tensor:
    return (token_divergence(s, t, T, "reverse_kl") * T * T).mean()


@register("jsd", summary="generalized JSD of GKD, T^2 [b KL(p_t || M) + (1-b) KL(p_s || M)], M = b p_t + (1-b) p_s",
          official=_NO_WEIGHTS, display_name="JSD", uses_label=False, parameters={"beta": _BETA},
          notes="beta 0 and 1 are exactly the forward and reverse KL (TRL's special cases).")
def jsd_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, beta: float = 0.5) -> Tensor:
    return (token_divergence(s, t, T, "jsd", beta=beta) * T * T).mean()


@register("skew_kl", summary="DistiLLM's skew KL, T^2 KL(p_t || a p_t + (1-a) p_s)", official=_NO_WEIGHTS,
          display_name="SKL", uses_label=False, parameters={"skew": _SKEW_F},
          notes="DistiLLM's default skew 0.1; a true divergence (DistiLLM returns the soft cross-entropy).")
def skew_kl_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, skew: float = 0.1) -> Tensor:
    return (token_divergence(s, t, T, "skew_forward_kl", skew=skew) * T * T).mean()


@register("skew_reverse_kl", summary="DistiLLM's skew reverse KL, T^2 KL(p_s || (1-a) p_t + a p_s)",
          official=_NO_WEIGHTS, display_name="SRKL", uses_label=False, parameters={"skew": _SKEW_R},
          notes="DistiLLM's default skew 0.1.")
def skew_reverse_kl_objective(s: Tensor, t: Tensor, y: Tensor, T: Any, skew: float = 0.1) -> Tensor:
    return (token_divergence(s, t, T, "skew_reverse_kl", skew=skew) * T * T).mean()
