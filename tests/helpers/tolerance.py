"""Tolerances for float32 results, derived from float32's epsilon and the computation, never tuned on
one CPU.

Two float32 computations of one quantity (two code paths, two CPUs' kernels, a value against its
exact form) differ by their rounding: each float32 operation rounds to within half an ulp, and
``exp``/``log`` kernels (SLEEF, libm, MKL's vector math, which a CPU's instruction set selects) to
within about 4 ulps. A result of ``n`` such operations in sequence (a reduction over ``n`` terms,
in any order) is then within ``n * 4 * eps`` of the exact one relative to the sum of the magnitudes
it added, the classical worst-case bound; divided by the result's own size (``cancellation`` =
sum of |terms| / |result|) this is a relative tolerance. It holds on any CPU, since it bounds every
order and every kernel; in practice the error is far smaller, and a real bug (a wrong term, a
missing T^2) is orders of magnitude larger.
"""

from __future__ import annotations

import torch

EPS32 = float(torch.finfo(torch.float32).eps)  # 1.19e-7
ULPS_PER_OPERATION = 4.0


def float32_rel(operations: int, cancellation: float = 1.0) -> float:
    """The relative tolerance of a float32 result of ``operations`` rounded operations in sequence
    whose terms add up to ``cancellation`` times the result's magnitude."""
    return operations * ULPS_PER_OPERATION * EPS32 * cancellation
