"""Rank agreement: Kendall's tau-b between the temperatures' ranking at each epoch and their final
ranking, pinned by hand-derived values, and the study's own warning (a small T leads early, a large T
wins at the end) found where it is."""

import math

import pytest

from kdtemp.report.rank import at_fraction, kendall_tau, rank_agreement, rank_markdown
from kdtemp.report.tables import Record


def test_kendall_tau_by_hand():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau([1, 2, 3], [30, 20, 10]) == -1.0
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)  # 5 concordant, 1 discordant
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))  # tau-b: one tie in x
    assert kendall_tau([1, 1, 1], [1, 2, 3]) is None  # a constant ranking agrees with nothing
    assert kendall_tau([1], [2]) is None


def test_kendall_tau_equals_scipy_s_tau_b():
    stats = pytest.importorskip("scipy.stats")
    x, y = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0], [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0]
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def run(t: float, seed: int, values: list[float]) -> Record:
    curve = [{"epoch": e + 1, "top1": v} for e, v in enumerate(values)]
    return Record(f"r{t}-{seed}", "done", t, seed, {}, "kd", len(values), values[-1], max(values), curve)


def crossover() -> list[Record]:
    """T = 1 leads for two epochs, T = 40 wins at epoch 4 (the study's SGD finding); two seeds."""
    shapes = {1.0: [40, 50, 55, 57], 4.0: [38, 49, 58, 60], 10.0: [37, 48, 59, 62], 40.0: [35, 45, 60, 64]}
    return [run(t, seed, [v + 0.3 * seed * (t % 3) for v in values]) for t, values in shapes.items() for seed in (0, 1)]


def test_a_cross_over_is_found_where_it_is():
    rows = rank_agreement(crossover())
    assert [r.epoch for r in rows] == [1, 2, 3, 4] and {r.seeds for r in rows} == {2}
    first, last = rows[0], rows[-1]
    assert first.tau == pytest.approx(-1.0) and not first.top1 and not first.top3  # the early order is reversed
    assert last.tau == 1.0 and last.top1 and last.top3 and last.seed_tau == 1.0 and last.seed_tau_sd == 0.0
    assert rows[2].tau == 1.0 and rows[2].top1  # by epoch 3 the order is the final one
    assert [r.epoch for r in at_fraction(rows, 0.25)] == [1] and [r.epoch for r in at_fraction(rows, 0.5)] == [2]
    table = rank_markdown(rows)
    assert "| all runs | 4 | 2 | 4 | 10% | 1 | -1.00 | -1.00 +- 0.00 | no | no |" in table


def test_settings_with_runs_of_different_lengths_or_two_temperatures_are_left_out():
    short = [run(1.0, 0, [1, 2]), run(2.0, 0, [1, 2, 3]), run(4.0, 0, [1, 2, 3])]
    assert rank_agreement(short) == []
    assert rank_agreement([run(1.0, 0, [1, 2]), run(2.0, 0, [2, 1])]) == []


def test_one_seed_has_no_spread():
    rows = rank_agreement([run(t, 0, [t, 10 - t]) for t in (1.0, 2.0, 4.0)])
    assert rows[0].seed_tau == -1.0 and rows[0].seed_tau_sd is None
    assert "(one seed)" in rank_markdown(rows)
