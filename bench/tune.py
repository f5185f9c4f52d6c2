"""``kdtemp tune`` against the full grid, on real settings (BENCHMARKS.md and docs/tune.md record the figures).

For each setting: the full temperature grid with ``--seeds`` seeds is trained as a study (on the study's
validation split held out of training), then ``kdtemp tune`` runs on the same store. Its candidates are
the study's own runs, so it trains nothing more: it reads the validation scores at its rungs, exactly what
it would have read training alone (``tests/study/test_tune.py`` shows a tuned candidate's run is the same
run, bit for bit), and its cost is the student-epochs its rungs need. Printed per setting: the grid's
best and worst T on test (mean +- std over seeds; whether T matters: best minus worst beyond twice the
best cell's std), tune's choice, its regret on test in points against the best cell's seed std, the
cost ratio (against the grid with every seed, and with one), and the rank agreement (Kendall's tau of the
ranking at 10, 25 and 50% of training against the final one, by the mean over seeds).

Settings (``--settings``, comma-separated):

* ``digits-adamw``: ``make run``'s pair (resnet32 teacher -> resnet20, scikit-learn's digits at 16 px,
  AdamW, 5 epochs, the study's 9 temperatures); ``digits-sgd``: the same with SGD;
  ``digits-weak``: the same AdamW student from a resnet32 teacher trained one epoch (a weak teacher,
  prepared by the study); ``digits-sgd-dts``: the SGD pair with DTS ranges as candidates ([1, 3], [2, 4],
  [4, 8], [1, 8], [8, 16], [16, 40], each starting at its maximum): the range ``tune`` finds for the pair,
  against the paper's [1, 3] and [4, 8] (``cifar10-sgd-dts``: the same on CIFAR-10).
* ``cifar10-sgd`` / ``cifar10-adamw``: CIFAR-10 JPEG (``--data``: a folder with ``cifar10-jpeg/`` and
  ``resnet-cifar10/``, as ``../shared/data`` unpacks), 200 images a class of which 1,000 in all are the
  validation split (so about 100 a class train; a 100-image validation split, 2026-12-04's, has a top-1
  standard error near 5 points, more than the differences tune must see), the shared resnet56 checkpoint
  teaching resnet20 for 12 epochs at T in {1, 2, 4, 10, 40}; ``cifar10-r20``: the weaker resnet20
  checkpoint teaching resnet20 (AdamW).
* ``sst2`` (``--text``: ``../shared/data/text``): SST-2's sentences with BERT's vocabulary, a small BERT
  teacher trained from scratch by the study teaching a smaller one (:func:`sst2`).
* ``dolly`` (``--text``): instruction following on MiniLLM's Dolly, ``dolly_tiny``'s causal-LM pair at 5
  temperatures, chosen on ROUGE-L of generations for validation records (:func:`dolly`).

    python bench/tune.py --settings digits-adamw,digits-sgd --work /tmp/tune-bench [--data DIR] [--seeds 2]

``--teacher``: the digits teacher (``runs/demo/teacher/teacher.pt``, which ``make run`` writes).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import yaml

from kdtemp.report.rank import at_fraction, rank_agreement
from kdtemp.report.tables import aggregate, aggregate_points, records
from kdtemp.study import Store, load_study, run_study, store_path
from kdtemp.study.tune import tune_study

TEMPERATURES = [1, 2, 3, 4, 5, 7, 10, 20, 40]


def digits(teacher: str, optimizer: dict, weak: bool = False) -> dict:
    base = {"data": {"dataset": "digits", "resolution": 16, "validation": 0.2},
            "augment": {"random_resized_crop": False, "randaugment_ops": 0, "horizontal_flip": False, "mix": True},
            "batch_size": 64,
            "teacher": {"name": "resnet32", "init": "checkpoint", "weights": teacher},
            "student": {"model": {"name": "resnet20", "init": "random"}, "objective": "kd", "optimizer": optimizer,
                        "epochs": 5}}
    study = {"base": base, "grid": {"student.temperature": TEMPERATURES}}
    if weak:
        base["teacher"] = {"prepared": "teacher"}
        study["prepare"] = {"teacher": {"base": {"model": {"name": "resnet32", "init": "random"},
                                                 "optimizer": {"name": "adamw", "lr": 0.005, "weight_decay": 0.05},
                                                 "epochs": 1}}}
    return study


def cifar10(data: Path, optimizer: dict, teacher: str = "resnet56", weights: str = "resnet56-4bfd9763.th") -> dict:
    base = {"data": {"dataset": "folder", "root": str(data / "cifar10-jpeg"), "resolution": 32, "train_per_class": 200,
                     "validation": 1000},
            "augment": {"randaugment_ops": 0, "horizontal_flip": True, "mix": True},
            "batch_size": 64,
            "teacher": {"name": teacher, "init": "checkpoint", "weights": str(data / "resnet-cifar10" / weights)},
            "student": {"model": {"name": "resnet20", "init": "random"}, "objective": "kd", "optimizer": optimizer,
                        "epochs": 12}}
    return {"base": base, "grid": {"student.temperature": [1, 2, 4, 10, 40]}}


DTS_RANGES = [(1, 3), (2, 4), (4, 8), (1, 8), (8, 16), (16, 40)]
"""DTS ranges as candidates: the paper's cross-family [1, 3] and same-family [4, 8], and others around them."""


def with_dts_ranges(study: dict) -> dict:
    """``study`` with DTS ranges as its temperature axis instead of fixed temperatures (each starts at its maximum)."""
    study = copy.deepcopy(study)
    study.pop("grid")
    study["base"]["student"]["temperature_policy"] = "dts"
    study["zip"] = [{"student.dts.minimum": [lo for lo, _ in DTS_RANGES], "student.dts.maximum": [hi for _, hi in DTS_RANGES],
                     "student.dts.initial": [hi for _, hi in DTS_RANGES]}]
    return study


def tiny_bert(layers: int, hidden: int) -> dict:
    return {"model_type": "bert", "vocab_size": 30522, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": 2, "intermediate_size": 4 * hidden, "max_position_embeddings": 64}


def sst2(text: Path, work: Path) -> dict:
    """SST-2 sentences (``sst2_stsa_binary``: ``<label> <sentence>`` lines, 6,920 train / 1,821 test) as JSONL,
    BERT's WordPiece vocabulary; a 2-layer, 128-wide BERT teacher trained from scratch by the study (3 epochs)
    teaching 1-layer, 64-wide students for 6 epochs at 5 temperatures."""
    import json as _json

    folder = work / "sst2-data"
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "stsa.binary.train"), ("test", "stsa.binary.test")):
        lines = (text / "sst2_stsa_binary" / name).read_text().splitlines()
        rows = [{"text": line[2:], "label": int(line[0])} for line in lines if line[:1] in "01" and line[1:2] == " "]
        (folder / f"{split}.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows))
    base = {"task": "text_classification",
            "data": {"dataset": "text_classification", "root": str(folder), "max_length": 64, "validation": 0.1,
                     "tokenizer": str(text / "bert_base_uncased_vocab")},
            "batch_size": 64, "teacher": {"prepared": "teacher"},
            "student": {"model": {"name": "bert-1x64", "init": "random", "config": tiny_bert(1, 64)}, "objective": "kd",
                        "optimizer": {"name": "adamw", "lr": 1.0e-3, "weight_decay": 0.01}, "epochs": 6}}
    prepare = {"teacher": {"base": {"model": {"name": "bert-2x128", "init": "random", "config": tiny_bert(2, 128)},
                                    "optimizer": {"name": "adamw", "lr": 1.0e-3, "weight_decay": 0.01}, "epochs": 3,
                                    "label_smoothing": 0.0}}}
    return {"base": base, "prepare": prepare, "grid": {"student.temperature": [1, 2, 4, 10, 40]}}


def dolly(text: Path) -> dict:
    """``dolly_tiny``'s pair (``kdtemp examples copy dolly_tiny``) with a temperature axis: MiniLLM's Dolly as
    GPT-2 ids (the first 1,000 training records; on 500 records the study's teacher fails the degenerate-output
    check), the real GPT-2 tokenizer, a 2-layer, 128-wide GPT-2 teacher fine-tuned by the study for 6 epochs
    teaching 1-layer, 64-wide students with the forward KL for 4 epochs at 5 temperatures. Chosen on ROUGE-L
    of greedy 32-token answers to the first 100 records of Dolly's validation split, scored on the first 100
    prompts of MiniLLM's Dolly evaluation set. About 40 student-epochs of several minutes each on 2 CPU
    cores: meant for a GPU."""
    gpt2 = lambda width, layers, heads: {"model_type": "gpt2", "vocab_size": 50257, "n_positions": 512,  # noqa: E731
                                         "n_embd": width, "n_layer": layers, "n_head": heads}
    adamw = {"name": "adamw", "lr": 3.0e-3, "weight_decay": 0.01, "clip_norm": 1.0}
    base = {"task": "causal_lm",
            "data": {"dataset": "minillm", "root": str(text / "minillm_dolly_processed_gpt2"),
                     "eval_root": str(text / "minillm_eval"), "eval_sets": ["dolly"], "tokenizer": str(text / "gpt2_bpe"),
                     "train_samples": 1000, "eval_samples": 100, "validation": 100, "max_prompt_length": 256,
                     "max_length": 512, "generation": {"protocol": "greedy", "max_new_tokens": 32, "batch_size": 50}},
            "teacher": {"prepared": "teacher"}, "batch_size": 16,
            "student": {"model": {"name": "tiny-gpt2-student", "init": "random", "config": gpt2(64, 1, 2)},
                        "objective": "kd", "optimizer": adamw, "epochs": 4}}
    prepare = {"teacher": {"base": {"model": {"name": "tiny-gpt2-teacher", "init": "random", "config": gpt2(128, 2, 4)},
                                    "optimizer": adamw, "epochs": 6, "label_smoothing": 0.0}}}
    return {"base": base, "prepare": prepare, "grid": {"student.temperature": [1, 2, 4, 10, 40]}}


ADAMW = {"name": "adamw", "lr": 0.005, "weight_decay": 0.05}
SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5.0e-4}


def settings(teacher: str, data: Path | None, text: Path | None = None, work: Path | None = None) -> dict:
    found = {"digits-adamw": lambda: digits(teacher, ADAMW), "digits-sgd": lambda: digits(teacher, SGD),
             "digits-weak": lambda: digits(teacher, ADAMW, weak=True),
             "digits-sgd-dts": lambda: with_dts_ranges(digits(teacher, SGD))}
    if data is not None:
        found.update({"cifar10-sgd": lambda: cifar10(data, SGD),
                      "cifar10-adamw": lambda: cifar10(data, {"name": "adamw", "lr": 2.0e-3, "weight_decay": 0.05}),
                      "cifar10-r20": lambda: cifar10(data, {"name": "adamw", "lr": 2.0e-3, "weight_decay": 0.05},
                                                     "resnet20", "resnet20-12fca82f.th"),
                      "cifar10-sgd-dts": lambda: with_dts_ranges(cifar10(data, SGD))})
    if text is not None:
        found["sst2"] = lambda: sst2(text, work)
        found["dolly"] = lambda: dolly(text)
    return found


def measure(name: str, study: dict, work: Path, seeds: int) -> dict:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    study = copy.deepcopy(study)
    study.update({"name": name, "seeds": list(range(seeds)), "executor": {"kind": "inline"},
                  "output": str(folder / "study"), "tune": {"seeds": [0]}})
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    started = time.perf_counter()
    run_study(load_study(path), progress=False)
    grid_seconds = time.perf_counter() - started
    variants = {}
    for tune_seeds in ([0], list(range(seeds))) if seeds > 1 else ([0],):  # one seed, and every seed of the grid
        study["tune"] = {"seeds": tune_seeds}
        path.write_text(yaml.safe_dump(study, sort_keys=False))
        [variants[len(tune_seeds)]] = tune_study(load_study(path), progress=False)["settings"]  # trains nothing more
    setting = variants[1]
    with Store(store_path(load_study(path)), readonly=True) as store:
        items = records(store.current_runs())
    table = aggregate(items, "final")
    if table:  # fixed temperatures: one row, keyed by T
        [cells] = table.values()
    else:  # DTS ranges: one point per range, keyed by its name
        cells = aggregate_points(items, "final", key=lambda r: f"[{r.bounds[0]:g}, {r.bounds[1]:g}]")
    best = max(cells, key=lambda t: cells[t].mean)
    worst = min(cells, key=lambda t: cells[t].mean)
    paper = {name: f"{cells[name].mean:.2f}" for name in ("[1, 3]", "[4, 8]") if name in cells}
    agreement = rank_agreement(items)
    tau = {f: next((r.tau for r in at_fraction(agreement, f)), None) for f in (0.1, 0.25, 0.5)}
    return {"setting": name, "grid_minutes": grid_seconds / 60, "best_T": best, "best": cells[best].mean,
            "best_std": cells[best].std, "worst_T": worst, "worst": cells[worst].mean,
            "T_matters": cells[best].mean - cells[worst].mean > 2 * cells[best].std, "chosen": setting["chosen"],
            "regret": setting["regret"], "within_std": setting["regret"] is not None and setting["regret"] <= cells[best].std,
            "cost": setting["cost_ratio"], "cost_one_seed": setting["cost_ratio_one_seed"], "tau": tau,
            "history": setting["history"], "paper_ranges": paper,
            "all_seeds": None if seeds < 2 else {
                "chosen": variants[seeds]["chosen"], "regret": variants[seeds]["regret"], "cost": variants[seeds]["cost_ratio"],
                "within_std": variants[seeds]["regret"] is not None and variants[seeds]["regret"] <= cells[best].std}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="digits-adamw,digits-sgd,digits-weak")
    parser.add_argument("--work", type=Path, default=Path("/tmp/kdtemp-tune-bench"))
    parser.add_argument("--data", type=Path, help="a folder with cifar10-jpeg/ and resnet-cifar10/")
    parser.add_argument("--text", type=Path, help="../shared/data/text (sst2_stsa_binary/, bert_base_uncased_vocab/; minillm_*/, gpt2_bpe/)")
    parser.add_argument("--teacher", default=str(Path("runs/demo/teacher/teacher.pt").resolve()))
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    known = settings(args.teacher, args.data, args.text, args.work)
    rows = []
    for name in args.settings.split(","):
        if name not in known:
            raise SystemExit(f"--settings: unknown setting {name!r}; allowed: {', '.join(known)} (cifar10-* need --data)")
        row = measure(name, known[name](), args.work, args.seeds)
        rows.append(row)
        (args.work / "results.json").write_text(json.dumps(rows, indent=1, default=str))
        show = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"{name}: grid {row['grid_minutes']:.1f} min; best T {row['best_T']} {row['best']:.2f} +- {row['best_std']:.2f}, "
              f"worst T {row['worst_T']} {row['worst']:.2f} (T matters: {row['T_matters']}); tune chose T {row['chosen']}, "
              f"regret {show(row['regret'])} ({'within' if row['within_std'] else 'beyond'} the best cell's std), "
              f"cost {row['cost']:.2f} of the grid ({row['cost_one_seed']:.2f} of one seed's); tau at 10/25/50%: "
              + "/".join(show(row["tau"][f]) for f in (0.1, 0.25, 0.5))
              + (f"; the paper's DTS ranges on test: {row['paper_ranges']}" if row["paper_ranges"] else ""), flush=True)
        if row["all_seeds"] is not None:
            every = row["all_seeds"]
            print(f"  tuned on all {args.seeds} seeds: chose T {every['chosen']}, regret {show(every['regret'])} "
                  f"({'within' if every['within_std'] else 'beyond'} the best cell's std), cost {every['cost']:.2f} of the grid",
                  flush=True)
    hits = sum(r["within_std"] for r in rows)
    print(f"summary (tuned on one seed): regret within the best cell's seed std in {hits} of {len(rows)} settings; "
          f"mean cost {statistics.fmean(r['cost'] for r in rows):.2f} of the grid")
    every = [r["all_seeds"] for r in rows if r["all_seeds"] is not None]
    if every:
        print(f"summary (tuned on every seed): regret within the best cell's seed std in "
              f"{sum(e['within_std'] for e in every)} of {len(every)} settings; mean cost "
              f"{statistics.fmean(e['cost'] for e in every):.2f} of the grid")


if __name__ == "__main__":
    main()
