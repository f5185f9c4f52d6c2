"""The advisor against every constant temperature on the paper's Table 2, cross-validated across
datasets: whatever the rules tune (the H(p_bar) threshold and the two suggestions of finding 4's
situation) is tuned on one dataset's rows and measured on the other's, and the run-time rules (whose
threshold comes from Table 1's entropies, no accuracy) are measured on both.

The figures (mean regret in accuracy points: each row's best minus the row's accuracy at the advised T)
say what Table 2 can support: the rules beat every constant on the held-out rows, but only by 0.004 to
0.006 points, below the table's 0.1-point rounding (the rows where the rules leave T = 40 split about
evenly between wins and losses). Run with ``-s`` to see the table."""

import functools
from pathlib import Path

import pytest

from kdtemp import advise as advise_module
from kdtemp.advise import Setup, advise

TEMPERATURES = [1, 2, 3, 4, 5, 7, 10, 20, 40]
INITS = {"Rand": "random", "TT": "target", "IN1K": "pretrained", "FT": "finetuned"}
TEACHERS = {"RN50": "resnet50", "ViT-S": "vit_small_patch16_224"}
# The baseline teachers' relative entropies H(p), H(p_bar) as the paper's Table 1 reports them (Pets: 20
# fine-tuning epochs, CIFAR-100: 40), what `kdtemp advise --teacher` measures and passes on.
ENTROPIES = {("pets", "RN50"): (0.543, 0.934), ("pets", "ViT-S"): (0.322, 0.886),
             ("cifar100", "RN50"): (0.384, 0.912), ("cifar100", "ViT-S"): (0.319, 0.896)}
DATASETS = ("pets", "cifar100")
IN_RANGE = [5, 7, 10, 20, 40]  # the suggestions the tuning may choose: those inside the advised range


def fixture_file() -> Path:
    tests = Path(__file__).resolve().parent
    while tests.name != "tests" and tests.parent != tests:
        tests = tests.parent
    found = sorted(tests.rglob("paper_table2.tsv"))
    assert found, "tests/fixtures/paper_table2.tsv is missing"
    return found[0]


def table2():
    lines = [l for l in fixture_file().read_text().splitlines() if not l.startswith("#")][1:]
    return [(c[0], c[1], c[2], c[3], tuple(float(v) for v in c[4:])) for c in (line.split("\t") for line in lines)]


ROWS = table2()


def row_setup(row) -> Setup:
    """A Table 2 row as a user with the teacher at hand describes it (`kdtemp advise --teacher`)."""
    dataset, _, init, teacher, _ = row
    pets = dataset == "pets"
    entropy, tail = ENTROPIES[dataset, teacher]
    return Setup(teacher_origin="pretrained", finetune_epochs=20 if pets else 40, optimizer="adamw",
                 epochs=1024 if pets else 512, batch_size=64, granularity="fine" if pets else "coarse",
                 class_overlap=True, teacher_entropy=entropy, teacher_tail_entropy=tail,
                 student_init=INITS[init], dataset=dataset, teacher=TEACHERS[teacher])


def regret(row, t: float) -> float:
    return max(row[4]) - row[4][TEMPERATURES.index(t)]


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def constants(rows) -> dict[int, float]:
    return {t: mean(regret(row, t) for row in rows) for t in TEMPERATURES}


def advised(rows, params=None):
    """The advisor's advice for ``rows``, with ``params`` (threshold, large T, moderate T) in place of
    its run-time ones."""
    with pytest.MonkeyPatch.context() as patch:
        if params is not None:
            for name, value in zip(("RICHEST_TAIL", "LARGE_T", "MODERATE_T"), params):
                patch.setattr(advise_module, name, value)
        return [advise(row_setup(row)) for row in rows]


def advisor_regret(rows, params=None) -> float:
    return mean(regret(row, a.suggested) for row, a in zip(rows, advised(rows, params)))


@functools.lru_cache(maxsize=None)
def _tune(rows):
    return tune(list(rows))


def tune(rows):
    """The threshold and the two suggestions that lose least on ``rows``, in the paper's direction (a
    richer tail never gets the smaller T, finding 5). Candidate thresholds: below all, between and above
    all of the rows' H(p_bar). Ties go to the larger temperatures (finding 4), then to the threshold
    nearest the run-time one."""
    tails = sorted({ENTROPIES[row[0], row[3]][1] for row in rows})
    thresholds = [0.0] + [(a + b) / 2 for a, b in zip(tails, tails[1:])] + [1.0]
    candidates = [(theta, float(large), float(moderate)) for theta in thresholds
                  for large in IN_RANGE for moderate in IN_RANGE if moderate <= large]
    return min(candidates, key=lambda p: (round(advisor_regret(rows, p), 9), -p[1], -p[2],
                                          abs(p[0] - advise_module.RICHEST_TAIL)))


def cross_validation():
    """For each held-out dataset: the parameters tuned on the other dataset's rows, the advisor's
    held-out regret with them and with the run-time rules, and every constant T's regret there."""
    results = {}
    for held_out in DATASETS:
        train = [row for row in ROWS if row[0] != held_out]
        test = [row for row in ROWS if row[0] == held_out]
        params = _tune(tuple(train))
        results[held_out] = {"params": params, "tuned": advisor_regret(test, params),
                             "runtime": advisor_regret(test), "constants": constants(test), "rows": test}
    results["all"] = {"params": None, "tuned": None, "runtime": advisor_regret(ROWS),
                      "constants": constants(ROWS), "rows": ROWS}
    return results


def wins_and_losses(rows, params=None):
    """Rows where the advised T beats / loses to / ties T = 40, the best constant on both datasets."""
    diffs = [round(regret(row, 40) - regret(row, a.suggested), 6) for row, a in zip(rows, advised(rows, params))]
    return sum(d > 0 for d in diffs), sum(d < 0 for d in diffs), sum(d == 0 for d in diffs)


def print_table(results):
    header = f"{'held-out rows':<16}{'tuned on other':>16}{'run-time':>10}" + "".join(f"{'T=' + str(t):>7}" for t in TEMPERATURES)
    print("\nmean regret on Table 2 (accuracy points below each row's best)\n" + header)
    for name, r in results.items():
        tuned = f"{r['tuned']:.4f}" if r["tuned"] is not None else "-"
        print(f"{name + ' (' + str(len(r['rows'])) + ')':<16}{tuned:>16}{r['runtime']:>10.4f}"
              + "".join(f"{v:>7.3f}" for v in r["constants"].values()))
    for name in DATASETS:
        theta, large, moderate = results[name]["params"]
        won, lost, tied = wins_and_losses(results[name]["rows"], results[name]["params"])
        print(f"{name}: tuned on the other dataset: H(p_bar) < {theta:.3f} -> T = {large:g}, else T = {moderate:g}; "
              f"against T = 40 row by row: {won} better, {lost} worse, {tied} equal")


def test_the_advisor_beats_every_constant_temperature_on_held_out_rows_only_within_rounding():
    assert len(ROWS) == 58 and {row[0] for row in ROWS} == set(DATASETS)
    results = cross_validation()
    print_table(results)
    for name in DATASETS:
        r = results[name]
        best_constant = min(r["constants"].values())
        margin = best_constant - r["tuned"]
        # tuned on the other dataset, it beats every constant on these rows, by 0.004 (Pets) / 0.006 (CIFAR-100)
        assert margin > 0.003, (name, r["params"], r["tuned"], r["constants"])
        # ... and no more than a rounding unit of Table 2 (0.1 points) spread over a few rows: not a clear margin
        assert margin < 0.01, (name, margin)
        # the run-time rules (threshold from Table 1's entropies, no accuracies) lose no more than any constant
        assert r["runtime"] <= best_constant + 1e-9, (name, r["runtime"], r["constants"])
    assert results["all"]["runtime"] <= min(results["all"]["constants"].values()) + 1e-9
    # the figures the module docstring and the README quote
    assert round(results["pets"]["tuned"], 3) == 0.065 and round(results["cifar100"]["tuned"], 3) == 0.078
    assert round(results["pets"]["runtime"], 3) == 0.065 and round(results["cifar100"]["runtime"], 3) == 0.084
    assert round(results["all"]["runtime"], 3) == 0.076 and round(results["all"]["constants"][40], 3) == 0.078
    assert round(results["pets"]["constants"][20], 3) == round(results["pets"]["constants"][40], 3) == 0.069


def test_the_tuning_keeps_the_papers_direction_and_agrees_across_datasets():
    results = cross_validation()
    for name in DATASETS:
        theta, large, moderate = results[name]["params"]
        assert large >= moderate
    # both datasets pick the same suggestions: the richer tail (ViT-S) T = 40, the other (ResNet50) T = 20
    assert results["pets"]["params"][1:] == results["cifar100"]["params"][1:] == (40.0, 20.0)


@pytest.mark.parametrize("params", [None, "pets", "cifar100"])
def test_every_rows_best_temperature_lies_in_the_advised_range(params):
    tuned = None if params is None else _tune(tuple(row for row in ROWS if row[0] == params))
    for row, a in zip(ROWS, advised(ROWS, tuned)):
        best = [t for t, v in zip(TEMPERATURES, row[4]) if v == max(row[4])]
        assert any(a.low <= t <= a.high for t in best), (row[:4], best, a.low, a.high)
        assert a.low <= a.suggested <= a.high


def test_the_run_time_threshold_splits_the_baseline_teachers_as_table1_says():
    """Only a teacher whose tail is as uniform as that of some longer fine-tuned teacher steps down."""
    pets, cifar = (advised([row for row in ROWS if row[0] == d][:1] + [row for row in ROWS if row[0] == d and row[3] == "ViT-S"][:1])
                   for d in DATASETS)
    assert [a.suggested for a in pets] == [20.0, 40.0]  # Pets ResNet50 (H(p_bar) 0.934), ViT-S (0.886)
    assert [a.suggested for a in cifar] == [40.0, 40.0]  # CIFAR-100 ResNet50 (0.912), ViT-S (0.896)
    assert any("no richer than that of some teacher" in r for r in pets[0].reasons)
    unknown = advise(Setup(teacher_origin="pretrained", finetune_epochs=20, optimizer="adamw", epochs=1024,
                           granularity="fine", class_overlap=True))
    assert (unknown.low, unknown.high, unknown.suggested) == (5.0, 40.0, 40.0)
