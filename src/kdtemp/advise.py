"""Temperature advice: a recommended range for a described setup, with the reasons.

The rules encode the findings of Frank & Davis, "A Unified Revisit of Temperature in
Classification-Based Knowledge Distillation" (numbers refer to its findings):

1. Shared fixed-T KD remains the objective to use.
2. AdamW is much more robust to T than SGD.
3. With SGD, small T wins for short training and larger T for long training; a larger batch
   moves the cross-over later.
4. Large T (10 to 40) works best with long training when the teacher was generally pretrained
   and only briefly fine-tuned on a target whose classes overlap the pretraining classes.
5. Longer teacher fine-tuning lowers H(p) toward 0 and raises H(p_bar) toward 1; small T catches
   up. Teachers trained from scratch often prefer T = 1.
7. Fine-grained targets that overlap the pretraining classes prefer larger T than coarse ones;
   fine-grained targets without overlap show the opposite trend.

Inside finding 4's situation (a generally pretrained, briefly fine-tuned teacher, overlapping classes,
long training) the range is 5 to 40 and the suggestion is the top of it, T = 40, unless the teacher's
measured relative H(p_bar) is at least RICHEST_TAIL = 0.925: no richer than the tail of some teacher
the study fine-tuned beyond the minimal length (Table 1: 0.925 to 0.972 after 50 to 400 epochs; 0.886
to 0.950 at 20 / 40), where small T begins to catch up (finding 5); such a teacher gets T = 20. The
threshold comes from Table 1's entropies alone, not from any accuracy. H(p) is not used for the
suggestion: across architectures it separates fine-tuning lengths far less than H(p_bar) does (ViT-S
at 20 epochs has the H(p) of ResNet50 at 400). Class granularity does not move the suggestion: finding
7 puts fine-grained overlapping targets at or above coarse ones, and coarse ones already get the top.

Calibration (tests/advise/test_calibration.py, tests/advise/test_cross_validation.py) on the paper's
published Table 2 (58 rows: students x initialisations x ResNet50 / ViT-S teachers x Pets / CIFAR-100,
AdamW, long training, teachers fine-tuned 20 / 40 epochs from ImageNet weights; the teachers' entropies
from Table 1): mean regret against each row's best T, in accuracy points. With the teachers' entropies
the rules lose 0.065 on Pets (best constant T = 20 or 40: 0.069) and 0.084 on CIFAR-100 (T = 40:
0.084, a tie), 0.076 on all rows (T = 40: 0.078); without them they suggest 40 everywhere and tie T =
40. Tuning the threshold and the two suggestions on one dataset's rows and measuring on the other's
gives 0.078 on CIFAR-100 (tuned on Pets; best constant 0.084) and 0.065 on Pets (tuned on CIFAR-100;
0.069). These margins (0.004 to 0.006 points) are below the table's 0.1-point rounding: on the rows
where the rules move off T = 40 they win about as often as they lose. Table 2 does not support beating
the best constant by a clear margin; what it does support is the advised range: every row has a best T
within [5, 40].

Past results in a study store take precedence only where they say more than seed noise: the best
temperature of the matching runs (same teacher and dataset when known, same optimizer, closest
length) replaces the rule's suggestion when its mean beats the mean at the suggested temperature by
more than the seed spread (the larger of the two cells' standard deviations); otherwise the rule
stands and the evidence is listed as agreeing within noise.
"""

from __future__ import annotations

import collections
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# Thresholds (study scale: Pets 20-400 fine-tuning epochs, 64-1024 distillation epochs at batch 64).
BRIEF_FINETUNE = 50
LONG_FINETUNE = 200
SHORT_TRAINING = 128
LONG_TRAINING = 256
SATURATED_TAIL = 0.96
RICH_TAIL = 0.94
# Finding 4's situation: below RICHEST_TAIL the teacher's tail is richer than that of any teacher the study
# fine-tuned beyond the minimal length (Table 1's lowest, ViT-S on CIFAR-100 after 100 epochs: 0.925), and the
# suggestion is the top of the range; at or above it, a step down (small T begins to catch up, finding 5).
RICHEST_TAIL = 0.925
LARGE_T = 40.0
MODERATE_T = 20.0


@dataclass
class Setup:
    """What is known about a planned distillation (``None``: unknown)."""

    teacher_origin: Literal["pretrained", "scratch"] | None = None
    finetune_epochs: int | None = None
    optimizer: Literal["adamw", "sgd"] | None = None
    epochs: int | None = None
    batch_size: int | None = None
    granularity: Literal["fine", "coarse"] | None = None
    class_overlap: bool | None = None
    teacher_entropy: float | None = None
    teacher_tail_entropy: float | None = None
    student_init: Literal["random", "target", "pretrained", "finetuned"] | None = None
    dataset: str | None = None
    teacher: str | None = None
    task: str | None = None  # the task of the pair (None: image classification, where the rules were found)


@dataclass
class Advice:
    """A recommended temperature range, a single suggestion, and why."""

    low: float
    high: float
    suggested: float
    reasons: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"recommended temperature: {self.suggested:g} (range {self.low:g} to {self.high:g})", "because:"]
        lines += [f"  - {r}" for r in self.reasons]
        if self.evidence:
            lines.append("your past results:")
            lines += [f"  - {e}" for e in self.evidence]
        return "\n".join(lines)


def _scaled(epochs: int, batch_size: int | None) -> float:
    """Training length in baseline units: a batch of 256 needs about 4x the epochs of 64 to match."""
    return epochs * 64 / (batch_size or 64)


def advise(setup: Setup, stores: list[str | Path] | None = None) -> Advice:
    """Recommend a temperature range for ``setup``, drawing on past results in ``stores``."""
    small: list[str] = []
    large: list[str] = []
    notes: list[str] = []
    cap = 4.0

    if setup.teacher_origin == "scratch":
        small.append("the teacher was trained from scratch: such teachers learned little inter-class structure and "
                     "often prefer T = 1 (finding 5)")
        cap = 2.0
    elif setup.teacher_origin == "pretrained" and setup.finetune_epochs is not None:
        if setup.finetune_epochs >= LONG_FINETUNE:
            small.append(f"the teacher was fine-tuned for {setup.finetune_epochs} epochs: long fine-tuning drives its "
                         "outputs toward one-hot with a uniform tail, and small T catches up with large T (finding 5)")
        elif setup.finetune_epochs <= BRIEF_FINETUNE:
            large.append(f"the teacher is generally pretrained and only briefly fine-tuned ({setup.finetune_epochs} "
                         "epochs), so it keeps rich inter-class relations (finding 4)")
    elif setup.teacher_origin == "pretrained":
        large.append("the teacher is generally pretrained (its fine-tuning length is unknown; brief fine-tuning "
                     "favours large T, finding 4)")

    if setup.teacher_tail_entropy is not None:
        if setup.teacher_tail_entropy >= SATURATED_TAIL:
            small.append(f"the teacher's relative H(p_bar) is {setup.teacher_tail_entropy:.3f}: its non-top classes are "
                         "nearly uniform, like label smoothing, which prefers T = 1 (findings 5 and 6)")
        elif setup.teacher_tail_entropy <= RICH_TAIL:
            large.append(f"the teacher's relative H(p_bar) is {setup.teacher_tail_entropy:.3f}: its non-top classes "
                         "carry structure that a larger T exposes (finding 6)")

    if setup.class_overlap is False:
        small.append("the target's classes do not overlap the pretraining classes: fine-grained targets without "
                     "overlap (Cars, finer-grained birds) prefer smaller T (finding 7)")
        cap = min(cap, 3.0)

    if setup.optimizer == "sgd" and setup.epochs is not None:
        length = _scaled(setup.epochs, setup.batch_size)
        batch = f" at batch {setup.batch_size}" if setup.batch_size and setup.batch_size != 64 else ""
        if length < SHORT_TRAINING:
            small.append(f"SGD with short training ({setup.epochs} epochs{batch}): small T wins before the cross-over "
                         "(finding 3)")
            cap = min(cap, 3.0)
        elif length >= LONG_TRAINING:
            large.append(f"SGD with long training ({setup.epochs} epochs{batch}): larger T overtakes after the "
                         "cross-over (finding 3)")
    elif setup.optimizer == "adamw":
        notes.append("AdamW is robust to T, so a value inside the range is rarely far from the best (finding 2)")

    long_training = setup.epochs is not None and _scaled(setup.epochs, setup.batch_size) >= LONG_TRAINING
    if setup.epochs is not None and not long_training and not small:
        notes.append(f"{setup.epochs} epochs is short for the largest temperatures, which need long training (finding 4)")

    if small:
        low, high = 1.0, cap
        suggested = 1.0 if setup.teacher_origin == "scratch" or len(small) > 1 else 2.0
        reasons = small + [f"pointing the other way: {r}" for r in large]
    elif large and long_training and setup.class_overlap is not False:
        low, high = 5.0, 40.0
        tail = setup.teacher_tail_entropy
        if tail is not None and tail >= RICHEST_TAIL:
            suggested = MODERATE_T
            notes.append(f"the teacher's relative H(p_bar) ({tail:.3f}) is no richer than that of some teacher the "
                         f"study fine-tuned for longer (from {RICHEST_TAIL:g} in its Table 1), where small T begins to "
                         f"catch up (finding 5), so T = {MODERATE_T:g} rather than the top of the range")
        else:
            suggested = LARGE_T
            if tail is not None:
                notes.append(f"the teacher's relative H(p_bar) ({tail:.3f}) is richer than that of every teacher the "
                             f"study fine-tuned for longer (from {RICHEST_TAIL:g} in its Table 1), so the top of the "
                             "range (finding 4)")
        if setup.granularity == "fine":
            notes.append("fine-grained targets whose classes overlap the pretraining classes prefer larger T than "
                         "coarse ones (finding 7)")
        elif setup.granularity == "coarse":
            notes.append("on coarse-grained targets the accuracy plateau starts at a lower T (the study's Fig. 6), so "
                         "the low end of the range costs less there")
        if setup.optimizer != "sgd":
            notes.append("under AdamW the plateau is flat: any T from 5 to 40 was within a few tenths of a point of "
                         "the best in the study's Table 2, and no rule beat always using T = 40 there by more than "
                         "the table's rounding (finding 2)")
        reasons = large + [f"long training ({setup.epochs} epochs) lets large T pay off (finding 4)"]
    else:
        low, high, suggested = 3.0, 10.0, 4.0
        reasons = large or ["no strong signal either way: the study's accuracy rises from T = 1 to about T = 4-10 "
                            "in most settings before it plateaus"]
    if setup.student_init == "finetuned":
        notes.append("a student already fine-tuned on the target gains the least from KD at any T (Table 2), so the "
                     "choice of T matters less")
    elif setup.student_init in ("random", "target", "pretrained"):
        notes.append("the study found the same preference for large T across random, target-trained and "
                     "pretrained students (Table 2)")
    advice = Advice(low, high, suggested, reasons + notes)
    if setup.task is not None:
        _task_notes(advice, {setup.task})
    for store in stores or []:
        _add_evidence(advice, setup, Path(store))
    return advice


def _task_notes(advice: Advice, tasks: set[str]) -> None:
    """Where the rules were found, for a pair of another task, and that task's own published evidence."""
    from .tasks import DEFAULT_TASK

    others = sorted(tasks - {DEFAULT_TASK})
    if others and not any("found on image classification" in r for r in advice.reasons):
        advice.reasons.append("these rules were found on image classification (the study's Tables 1-2); they say "
                              f"nothing certain about {', '.join(others)}, where your own runs are the evidence that "
                              "counts")
    if "causal_lm" in others and not any("2606.00306" in r for r in advice.reasons):
        advice.reasons.append("for causal LMs, Luong and Chen (2026, arXiv 2606.00306) report the reverse KL best at "
                              "T = 1 and the forward KL at higher T")


def _store_evidence(advice: Advice, name: str, folder: Path, runs: list[dict]) -> None:
    """What a store says beyond its best cells: how far an early ranking of T agreed with the final one
    (the report's rank agreement) and the choices of past ``kdtemp tune`` runs (``tune.json``)."""
    from .report.rank import at_fraction, rank_agreement
    from .report.tables import readable, records

    items = records(runs)
    names = readable(items)
    for row in at_fraction(rank_agreement(items, key=lambda r: names.get(r.label, r.label)), 0.25):
        tau = "n/a" if row.tau is None else f"{row.tau:.2f}"
        advice.evidence.append(f"{name}: {row.setting}: the ranking of {row.temperatures} temperatures a quarter into "
                               f"training (epoch {row.epoch} of {row.epochs}) agrees with the final one at Kendall's tau "
                               f"{tau}; the final best T {'already led' if row.top1 else 'did not lead'} then")
    path = folder / "tune.json"
    try:
        record = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        record = None
    for setting in (record or {}).get("settings", []):
        regret = ("" if setting.get("regret") is None else
                  f", regret {setting['regret']:.2f} points against the grid's best T {setting['grid_best']}")
        advice.evidence.append(f"{name}: kdtemp tune chose T {setting['chosen']} for {setting['setting']} on "
                               f"{record.get('metric')} at {setting['cost_ratio']:.2f} of the grid's cost{regret}")


def _add_evidence(advice: Advice, setup: Setup, target: Path) -> None:
    """Best temperatures of the matching settings in a study store; they override the rules only
    where they beat the suggested temperature by more than the seed spread. A store's runs are
    compared by its primary metric (top-1 for images), better by the metric's goal."""
    from .report import resolve_store
    from .report.tables import Metric, aggregate, best_temperatures, records
    from .study.store import Store

    store_file = resolve_store(target)
    with Store(store_file, readonly=True) as store:
        runs = [r for r in store.current_runs() if r["status"] == "done"]
        name = store.meta("name", target.name)
        metric = Metric(*store.primary())
        used = {r["run_id"] for r in runs}
        elsewhere = sum(1 for r in store.runs() if r["status"] == "done" and r["run_id"] not in used)
    _store_evidence(advice, name, store_file.parent, runs)
    if elsewhere:
        advice.evidence.append(f"{name}: {elsewhere} finished run{'s' if elsewhere != 1 else ''} outside the plan of "
                               "its last `kdtemp study run` (e.g. a run with seeds=[0]) are not used")
    matched = []
    if setup.dataset:
        runs = [r for r in runs if r["config"]["data"]["dataset"] == setup.dataset]
        matched.append(f"dataset {setup.dataset}")
    if setup.teacher:
        runs = [r for r in runs if (r["config"].get("teacher") or {}).get("name") == setup.teacher
                or (r["config"].get("teacher") or {}).get("weights") == setup.teacher]
        matched.append(f"teacher {setup.teacher}")
    if setup.optimizer:
        runs = [r for r in runs if r["config"]["student"]["optimizer"]["name"] == setup.optimizer]
    runs = [r for r in runs if r["config"]["student"]["objective"] == "kd"
            and r["config"]["student"].get("temperature_policy", "fixed") == "fixed"]
    far = False
    if setup.epochs is not None and runs:
        closest = min({r["config"]["student"]["epochs"] for r in runs}, key=lambda e: abs(e - setup.epochs))
        runs = [r for r in runs if r["config"]["student"]["epochs"] == closest]
        far = not closest / 2 <= setup.epochs <= closest * 2
        if far:
            advice.evidence.append(f"{name}: its closest runs have {closest} epochs, far from your {setup.epochs}; the "
                                   "best T moves with training length (finding 4), so they are shown but do not "
                                   "override the rules")
    from .tasks import DEFAULT_TASK

    _task_notes(advice, {r["config"].get("task", DEFAULT_TASK) for r in runs})
    if not runs:
        advice.evidence.append(f"{name}: no finished fixed-T KD run matches this setup"
                               + (f" ({', '.join(matched)})" if matched else ""))
        return
    table = aggregate(records(runs), metric.key("final"))
    sign = 1 if metric.goal == "max" else -1  # a gain is an improvement by the metric's goal
    overrides = []
    for row, cells in table.items():
        if len(cells) < 2:
            continue
        tied = best_temperatures(cells)
        near = min(cells, key=lambda t: abs(t - advice.suggested))
        if len(tied) == len(cells):
            advice.evidence.append(f"{name}: {row}: every temperature ties (mean {metric.short} "
                                   f"{cells[near].mean:.2f}{metric.unit}); "
                                   "no preference")
            continue
        best = min(tied, key=lambda t: abs(t - advice.suggested))  # among tied best, the nearest to the rules
        spread = max(cells[best].std, cells[near].std)
        gain = sign * (cells[best].mean - cells[near].mean)
        if best != near and min(cells[best].n, cells[near].n) < 2:  # one seed: a spread nobody measured
            verdict = f"beats T = {near:g} by {gain:.2f} points, from one seed: no spread known, so it does not override the rules"
        elif best != near and gain > spread:
            verdict = f"beats T = {near:g} by {gain:.2f} points, more than the seed spread {spread:.2f}"
        else:
            verdict = f"T = {near:g} is within the seed spread ({gain:.2f} <= {spread:.2f} points)"
        advice.evidence.append(f"{name}: {row}: best T = {'/'.join(f'{t:g}' for t in sorted(tied))} (mean {metric.short} "
                               f"{cells[best].mean:.2f}{metric.unit} over {cells[best].n} seed{'s' if cells[best].n != 1 else ''}); "
                               f"{verdict}")
        if best != near and gain > spread and cells[best].n > 1 and not far:
            overrides.append(best)
    if overrides:
        # a temperature the runs used: the one most rows favour (the lower middle one among equals)
        votes = collections.Counter(overrides)
        most = max(votes.values())
        measured = statistics.median_low(sorted(t for t, n in votes.items() if n == most))
        advice.suggested = measured
        advice.low, advice.high = min(advice.low, min(overrides)), max(advice.high, max(overrides))
        disagree = (f"; the rows disagree (they favour T = {', '.join(f'{t:g}' for t in sorted(votes))}), so this is "
                    "the T most of them favour" if len(votes) > 1 else "")
        advice.reasons.insert(0, f"your own matching runs favour T = {measured:g} by more than their seed spread"
                                 f"{disagree}, which takes precedence over the rules")
