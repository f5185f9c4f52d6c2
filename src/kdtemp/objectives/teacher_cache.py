"""What a teacher-output cache stores per token, and the token divergences against it, at any temperature.

A causal LM's teacher row is ``V`` logits (50,257 for GPT-2). A cache keeps far less per token, so it
must say what it can serve. Two designs, both pure functions here (``bench/lm.py --part cache`` measures
their loss and gradient error against the live teacher; ``tests/objectives/test_teacher_cache.py`` pins
them):

* :class:`TopKTail` (``top_k_tail``): the ``k`` largest logits at ``T = 1`` with their ids, and the
  other ``V - k`` logits (the tail) summarised in ``bins`` bins of ``width`` below the ``k``-th logit:
  each bin's count and the log-sum-exp of its logits at ``T = 1`` (the last bin is open below, down to
  the tail's minimum, which is kept too). At any ``T`` the tail's partition sum
  ``Z_tail(T) = sum_tail exp(z / T)`` is estimated per bin by ``n^(1 - 1/T) exp(l / T)`` (exact at
  ``T = 1`` and for a bin of equal logits; by Jensen an upper bound for ``T > 1``, a lower one for
  ``T < 1``) and bounded by the bin's edges (:meth:`TopKTail.tail_log_partition`). The log normaliser
  ``L_T = log sum_v exp(z_v / T)`` is then known within a stated interval (:meth:`TopKTail.normaliser`),
  and so are the top ``k`` probabilities ``p_T(i) = exp(z_i / T - L_T)`` and the tail's mass. A divergence
  is taken over ``k + 1`` categories, the top ``k`` and one tail bin, the student's tail summed the
  same way (:func:`cached_divergence`). With the exact normaliser this is a **lower bound** of the full
  divergence for every divergence kdtemp has (they are f-divergences or mixtures of KLs, which merging
  categories cannot increase: the data-processing inequality); at ``T = 1`` the normaliser is exact. With
  ``k = V`` there is no tail and the value is the full divergence to float32 rounding. Every divergence
  and any ``T > 0`` are served.
* :class:`Sampled` (``sampled``, Sparse Logit Sampling's random-sampling KD, Anshumann et al., ACL 2025):
  ``k`` ids drawn with replacement from the teacher's ``softmax(z / T0)``, with their logits. At ``T``
  the target is the sparse distribution ``w`` over the draws, ``w_d`` proportional to
  ``exp(z_d (1/T - 1/T0))`` (each draw counts once, so an id's weight grows with its draws): at
  ``T = T0`` its expectation is the teacher's distribution, so the forward KL's gradient
  ``T (q - w)`` is unbiased there (biased, self-normalised, at any other ``T``). The value reported is
  ``KL(w || q)``. Reverse KL and the JSD need the teacher's probability where the *student* puts mass,
  which draws do not give: they are refused.

Conventions as :func:`kdtemp.objectives.token.token_kd_loss`: ``p = softmax(t / T)`` (teacher),
``q = softmax(s / T)`` (student), per-row values without ``T^2`` (the caller multiplies), float32 or
wider, ids as ``int64`` in memory (a file may store them narrower: ``kdtemp.tasks.lm.teacher_cache``
stores ids in 2 bytes and logits as float16 offsets, and says how many bytes a token takes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from ._common import Temperature, upcast
from .token import DIVERGENCES, TokenObjective, log_prob_divergence

DESIGNS = ("top_k_tail", "sampled")
SAMPLED_DIVERGENCES = ("forward_kl",)


def check_k(k: int, vocab: int, path: str = "k") -> None:
    """``k`` in 1 .. ``vocab`` (one line otherwise)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= vocab:
        raise ValueError(f"{path}: {k!r} is not a count of logits the vocabulary of {vocab:,} holds; allowed: 1 to {vocab:,}")


@dataclass(frozen=True)
class TopKTail:
    """The top ``k`` logits of each row at ``T = 1`` and a binned summary of the rest (module docstring).

    ``ids``, ``logits``: ``[N, k]``, largest first. ``counts``: ``[N, bins]`` logits per tail bin;
    ``log_sums``: ``[N, bins]`` each bin's ``log sum exp(z)`` (``-inf`` when empty); ``floor``: ``[N]``
    the tail's smallest logit (``+inf`` without a tail). Bin ``j < bins - 1`` holds the tail logits in
    ``(z_k - (j + 1) width, z_k - j width]`` with ``z_k`` the ``k``-th logit; the last bin the rest.
    """

    ids: Tensor
    logits: Tensor
    counts: Tensor
    log_sums: Tensor
    floor: Tensor
    width: float
    vocab: int

    @property
    def k(self) -> int:
        return self.ids.shape[1]

    @property
    def has_tail(self) -> bool:
        return self.k < self.vocab

    def rows(self, index: Tensor | slice) -> "TopKTail":
        """The rows ``index`` (a view for a slice)."""
        return TopKTail(self.ids[index], self.logits[index], self.counts[index], self.log_sums[index],
                        self.floor[index], self.width, self.vocab)

    def _edges(self) -> tuple[Tensor, Tensor]:
        """Each bin's lowest and highest possible logit, ``[N, bins]``."""
        bins = self.counts.shape[1]
        kth = self.logits[:, -1:]
        steps = torch.arange(bins, dtype=kth.dtype, device=kth.device)
        high = kth - steps * self.width
        low = kth - (steps + 1) * self.width
        low[:, -1] = torch.minimum(self.floor, high[:, -1])  # the open bin reaches down to the tail's minimum
        return low, high

    def _log_counts(self) -> Tensor:
        n = self.counts.to(self.logits.dtype)
        return torch.where(n > 0, n.clamp_min(1).log(), torch.full_like(n, -math.inf))

    def _bin_estimates(self, T: Tensor, log_n: Tensor) -> Tensor:
        """Each bin's ``log sum exp(z / T)`` estimated from its stored log-sum: ``(1 - 1/T) log n + l / T``
        (``-inf`` for an empty bin). Branch-free in ``T``: no read of a device temperature."""
        return torch.where(log_n > -math.inf, (1 - 1 / T) * log_n + self.log_sums / T, log_n)

    def tail_log_partition(self, temperature: Temperature) -> tuple[Tensor, Tensor, Tensor]:
        """``log Z_tail(T)``: the estimate, a lower and an upper bound, each ``[N]`` (``-inf`` without a tail)."""
        T = torch.as_tensor(temperature, dtype=self.logits.dtype, device=self.logits.device)
        log_n = self._log_counts()
        estimate = self._bin_estimates(T, log_n)
        low, high = self._edges()
        # the bin's edges bound every logit in it; by Jensen (x^(1/T) concave for T > 1, convex below) the
        # estimate is an upper bound above T = 1 and a lower one below, and exact at T = 1
        lower = torch.where(T >= 1, log_n + low / T, torch.maximum(log_n + low / T, estimate))
        upper = torch.where(T <= 1, log_n + high / T, torch.minimum(log_n + high / T, estimate))
        lower, upper = (torch.where(T == 1, estimate, bound) for bound in (lower, upper))
        return tuple(torch.logsumexp(x, dim=1) for x in (estimate, lower, upper))  # type: ignore[return-value]

    def normaliser(self, temperature: Temperature) -> tuple[Tensor, Tensor, Tensor]:
        """``L_T = log sum_v exp(z_v / T)``: the estimate, a lower and an upper bound, each ``[N]``."""
        head = torch.logsumexp(self.logits / temperature, dim=1)
        return tuple(torch.logaddexp(head, tail) for tail in self.tail_log_partition(temperature))  # type: ignore[return-value]

    def log_probs(self, temperature: Temperature) -> Tensor:
        """The teacher's log-probabilities at ``T`` over the top ``k`` and the tail: ``[N, k + 1]``
        (``[N, k]`` when ``k = V``), from the estimated normaliser (the bounds are not computed)."""
        T = torch.as_tensor(temperature, dtype=self.logits.dtype, device=self.logits.device)
        scaled = self.logits / T
        if not self.has_tail:
            return scaled - torch.logsumexp(scaled, dim=1, keepdim=True)
        tail = torch.logsumexp(self._bin_estimates(T, self._log_counts()), dim=1, keepdim=True)
        both = torch.cat([scaled, tail], dim=1)
        return both - torch.logsumexp(both, dim=1, keepdim=True)


def top_k_tail(teacher: Tensor, k: int, bins: int = 16, width: float = 1.0) -> TopKTail:
    """Encode teacher logits ``[N, V]`` as :class:`TopKTail` (``k`` kept, the tail in ``bins`` bins)."""
    z = upcast(teacher.detach())
    vocab = z.shape[1]
    check_k(k, vocab)
    if bins < 1 or not width > 0:
        raise ValueError(f"bins: {bins} and width: {width}; allowed: bins >= 1 and width > 0")
    values, ids = z.topk(k, dim=1, sorted=True)
    rows = z.shape[0]
    counts = torch.zeros(rows, bins, dtype=torch.int64, device=z.device)
    log_sums = torch.full((rows, bins), -math.inf, dtype=z.dtype, device=z.device)
    floor = torch.full((rows,), math.inf, dtype=z.dtype, device=z.device)
    if k < vocab:
        in_tail = torch.ones_like(z, dtype=torch.bool).scatter_(1, ids, False)
        below = (values[:, -1:] - z).div_(width).floor_().clamp_(0, bins - 1).to(torch.int64)
        below = torch.where(in_tail, below, torch.full_like(below, bins))  # the top k go to a discarded bin
        counts = torch.zeros(rows, bins + 1, dtype=torch.int64, device=z.device).scatter_add_(
            1, below, torch.ones_like(below))[:, :bins]
        # each bin's log-sum-exp in two scatter passes: its maximum, then the sum of exp(z - maximum) (<= 1 each,
        # 1 for the maximum itself: a bin that holds a logit never sums to 0)
        peak = torch.full((rows, bins + 1), -math.inf, dtype=z.dtype, device=z.device).scatter_reduce_(
            1, below, z, reduce="amax")
        shifted = (z - peak.gather(1, below)).exp_()
        total = torch.zeros((rows, bins + 1), dtype=z.dtype, device=z.device).scatter_add_(1, below, shifted)
        del shifted
        log_sums = torch.where(counts > 0, peak[:, :bins] + total[:, :bins].log(), log_sums)
        floor = z.masked_fill(~in_tail, math.inf).amin(dim=1)
    return TopKTail(ids, values, counts, log_sums, floor, float(width), vocab)


def student_log_probs(student: Tensor, ids: Tensor, temperature: Temperature, tail: bool) -> Tensor:
    """The student's log-probabilities at ``T`` over ``ids`` (``[N, k]``) and, when ``tail``, the
    summed rest of its vocabulary: ``[N, k + 1]``, from logits ``[N, V]`` (differentiable)."""
    log_q = torch.log_softmax(upcast(student) / temperature, dim=1)
    kept = log_q.gather(1, ids)
    if not tail:
        return kept
    rest = torch.logsumexp(log_q.scatter(1, ids, -math.inf), dim=1, keepdim=True)
    return torch.cat([kept, rest], dim=1)


def cached_divergence(student: Tensor, cached: TopKTail, temperature: Temperature, divergence: str = "forward_kl",
                      beta: float = 0.5, skew: float = 0.1) -> Tensor:
    """The per-row divergence ``[N]`` (no ``T^2``) of student logits ``[N, V]`` against a
    :class:`TopKTail` at ``T``, over its top ``k`` and one tail bin (module docstring)."""
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence: unknown {divergence!r}; allowed: {', '.join(DIVERGENCES)}")
    if student.shape[1] != cached.vocab:
        raise ValueError(f"student logits have {student.shape[1]:,} columns; the cache holds a vocabulary of "
                         f"{cached.vocab:,}: a cache of another tokenizer")
    log_q = student_log_probs(student, cached.ids, temperature, cached.has_tail)
    return log_prob_divergence(cached.log_probs(temperature), log_q, divergence, beta, skew)


@dataclass(frozen=True)
class Sampled:
    """``k`` ids per row drawn with replacement from ``softmax(z / T0)``, and their logits (``[N, k]``)."""

    ids: Tensor
    logits: Tensor
    sampled_at: float
    vocab: int

    def bytes_per_token(self, id_bytes: int | None = None, logit_bytes: int = 4) -> int:
        return self.ids.shape[1] * ((id_bytes or (2 if self.vocab <= 65536 else 4)) + logit_bytes)

    def weights(self, temperature: Temperature) -> Tensor:
        """The draws' self-normalised weights at ``T``, ``[N, k]`` (``1 / k`` each at ``T = T0``)."""
        return torch.softmax(self.logits * (1 / torch.as_tensor(temperature) - 1 / self.sampled_at), dim=1)


def sampled(teacher: Tensor, k: int, sampled_at: float = 1.0, generator: torch.Generator | None = None) -> Sampled:
    """Draw ``k`` ids per row of teacher logits ``[N, V]`` from ``softmax(z / sampled_at)``."""
    z = upcast(teacher.detach())
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: {k!r} is not a number of draws; allowed: an integer >= 1 (drawn with replacement)")
    ids = torch.multinomial(torch.softmax(z / sampled_at, dim=1), k, replacement=True, generator=generator)
    return Sampled(ids, z.gather(1, ids), float(sampled_at), z.shape[1])


def sampled_divergence(student: Tensor, cached: Sampled, temperature: Temperature,
                       divergence: str = "forward_kl") -> Tensor:
    """``KL(w || q)`` per row ``[N]`` (no ``T^2``): the draws' weights ``w`` against the student at ``T``."""
    if divergence not in SAMPLED_DIVERGENCES:
        raise ValueError(f"divergence: {divergence!r} needs the teacher where the student puts mass, which sampled "
                         f"ids do not give; allowed with a sampled cache: {', '.join(SAMPLED_DIVERGENCES)}")
    log_q = torch.log_softmax(upcast(student) / temperature, dim=1)
    w = cached.weights(temperature)
    target = torch.zeros_like(log_q).scatter_add_(1, cached.ids, w)  # an id drawn twice carries both weights
    present = target > 0
    safe = torch.where(present, target, torch.ones_like(target))
    return torch.where(present, target * (safe.log() - log_q), torch.zeros_like(target)).sum(dim=1)


@dataclass(frozen=True)
class CachedRows:
    """A batch's teacher rows read from a cache: the :class:`TopKTail` of each predicted position and
    the teacher's logit of the position's target token (``label``, ``[N]``, for DTS's teacher
    cross-entropy). What a cached teacher returns where a live one returns logits ``[N, V]``."""

    table: TopKTail
    label: Tensor

    def detach(self) -> "CachedRows":
        return self

    def __getitem__(self, index: Tensor | slice) -> "CachedRows":
        return CachedRows(self.table.rows(index), self.label[index])

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def cross_entropy(self) -> Tensor:
        """The teacher's mean cross-entropy at ``T = 1`` over the rows: ``L_1 - z_target``, exact as stored
        (the log normaliser at ``T = 1`` is stored, not estimated; a cache that rounds the logits, such as
        float16 offsets, rounds it alike)."""
        normaliser = torch.logsumexp(torch.cat([self.table.logits, self.table.log_sums], dim=1), dim=1)
        return (normaliser - self.label).mean()


CACHED_FORMS: dict[str, tuple[str, frozenset[str]]] = {
    "kd": ("forward_kl", frozenset()), "reverse_kl": ("reverse_kl", frozenset()),
    "jsd": ("jsd", frozenset({"beta"})), "skew_kl": ("skew_forward_kl", frozenset({"skew"})),
    "skew_reverse_kl": ("skew_reverse_kl", frozenset({"skew"}))}
"""The registered objectives a teacher cache serves, as the divergence and the parameters it takes: the
token divergences (``kd`` is the forward KL). Any other objective reads the teacher's full logits."""


def cached_rows_loss(name: str, params: dict) -> Callable[[Tensor, CachedRows, Tensor, Tensor], Tensor] | None:
    """``fn(student_rows, cached_rows, targets, T)``: the sum over the rows of ``T^2`` times the
    objective's divergence against the cache (a :data:`~kdtemp.objectives.token.RowLoss`), or None
    when the objective has no cached form."""
    form = CACHED_FORMS.get(name)
    if form is None or not set(params) <= form[1]:
        return None
    divergence = form[0]

    def fn(s_rows: Tensor, t_rows: CachedRows, y_rows: Tensor, T: Tensor) -> Tensor:
        return (cached_divergence(s_rows, t_rows.table, T, divergence, **params) * T * T).sum()

    return fn


def cached_token_objective(objective: Any, chunk_tokens: int | None) -> TokenObjective:
    """A registered objective applied to token rows against a teacher cache (:class:`CachedRows`), chunked:
    the :class:`~kdtemp.objectives.token.TokenObjective` of the live teacher with the cached form of its
    rows (each chunk's gradient by autograd, so a learned temperature receives its own)."""
    rows = cached_rows_loss(objective.name, dict(objective.params))
    if rows is None:
        raise ValueError(f"objective {objective.name!r} reads the teacher's full logits, which a teacher cache does "
                         f"not hold; a cache serves {', '.join(CACHED_FORMS)}")
    return TokenObjective(objective, chunk_tokens, rows=rows)
