"""``kdtemp``: the command line.

    kdtemp teacher CONFIG [field.path=value ...]   prepare a teacher
    kdtemp distill CONFIG [field.path=value ...]   distill a cohort of students
    kdtemp study plan|run|resume|status|export|rebuild FILE   a grid of runs from one study file
    kdtemp report STUDY                            tables, figures and an HTML page from a study
    kdtemp diagnose TEACHER.pt                     teacher entropies and softmax profiles
    kdtemp advise [--optimizer ...] [--store ...]  a recommended temperature range
    kdtemp examples [copy NAME [FOLDER]]           the example files shipped with kdtemp
    kdtemp demo [--output DIR]                     the embedded default (digits)

Configuration errors stop with one line naming the field, before any work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import yaml

from .config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict


def _load(cls, path: str, overrides: Sequence[str], kind: str):
    """Read a YAML config (a file, or a packaged example by name), resolve its relative paths
    against its folder, apply dotted overrides, validate it as ``cls``."""
    from .paths import load_config

    data, _ = load_config(path, kind)
    return from_dict(cls, apply_overrides(data, list(overrides)))


def _save_resolved(config, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    return path


def format_results(results) -> str:
    """A plain-text table of run results."""
    primary = results[0].primary_metric if results else "top1"
    lines = [f"{'run':<34} {'status':<7} {'final ' + primary:>10} {'best ' + primary:>10} {'best ep':>8}"]
    for r in results:
        final = f"{r.final_primary:.2f}" if r.final_primary is not None else "-"
        best = f"{r.best_primary:.2f}" if r.best_primary is not None else "-"
        lines.append(f"{r.label:<34} {r.status:<7} {final:>10} {best:>10} {r.best_epoch or '-':>8}")
        if r.error:
            lines.append(f"    failed: {r.error}")
    return "\n".join(lines)


def cmd_teacher(args) -> int:
    from .engine import TeacherConfig, prepare_teacher
    from .tasks import get_task

    config = _load(TeacherConfig, args.config, args.overrides, "teacher")
    cohort = config.cohort()
    get_task(cohort.task).preflight([(cohort, cohort.members)], device=config.device, member_field="")
    _save_resolved(config, Path(config.output), "config.yaml")
    path, result = prepare_teacher(config, progress=not args.quiet)
    print(f"teacher {config.model.name}: top-1 {result.final_primary:.2f}% after {config.epochs} epochs -> {path}")
    return 0


def cmd_distill(args) -> int:
    from .engine import DistillConfig, run_cohort
    from .tasks import get_task

    config = _load(DistillConfig, args.config, args.overrides, "distill")
    cohort = config.cohort()
    get_task(cohort.task).preflight([(cohort, cohort.members)], device=config.device)
    _save_resolved(config, Path(config.output), "config.yaml")
    results = run_cohort(cohort, output=Path(config.output) / "runs", progress=not args.quiet)
    print(format_results(results))
    return 0 if all(r.status == "done" for r in results) else 1


def cmd_demo(args) -> int:
    from . import demo
    from .engine import TeacherConfig, prepare_teacher
    from .report import build_report
    from .report.tables import aggregate, best_temperatures, records
    from .study import Store, load_study, run_study, store_path

    output = Path(args.output)
    teacher = from_dict(TeacherConfig, demo.teacher_config(output, args.teacher_epochs))
    _save_resolved(teacher, output / "teacher", "config.yaml")
    print(f"[1/3] preparing a {teacher.model.name} teacher on digits ({teacher.epochs} epochs)")
    path, result = prepare_teacher(teacher, progress=not args.quiet)
    print(f"      teacher top-1 {result.final_primary:.2f}% -> {path}")
    study_path = output / "study.yaml"
    study_path.parent.mkdir(parents=True, exist_ok=True)
    study_path.write_text(yaml.safe_dump(demo.study_file(output, path, args.epochs, tuple(range(args.seeds))), sort_keys=False))
    study = load_study(study_path)
    print(f"[2/3] temperature study {study_path}: {len(study.runs)} resnet20 students, T in {list(demo.STUDY_TEMPERATURES)}, "
          f"{args.seeds} seeds, {len(study.cohorts)} cohorts")
    run_study(study, progress=not args.quiet)
    with Store(store_path(study), readonly=True) as store:
        table = aggregate(records(store.current_runs()), "final_top1", key=lambda r: "kd")["kd"]
    print("      final top-1 (%) per temperature, mean +- std over seeds:")
    for t, cell in table.items():
        print(f"        T={t:>4g}: {cell.mean:6.2f} +- {cell.std:.2f}")
    best = sorted(best_temperatures(table))
    print(f"      best: T={'/'.join(f'{t:g}' for t in best)} ({table[best[0]].mean:.2f}%)"
          + (" (tied)" if len(best) > 1 else ""))
    report = build_report(study.output)
    print(f"[3/3] report: {report.html}")
    return 0


def cmd_study(args) -> int:
    from .study import ExecutorConfig, Store, export, load_study, plan, rebuild, run_study, status, store_path

    study = load_study(args.file, output=args.output, overrides=args.overrides)
    if args.action == "rebuild":
        moved, counts = rebuild(study)
        kept = f"; the old store is kept as {moved}" if moved else ""
        print(f"study {study.file.name}: store rebuilt from the run folders: "
              + ", ".join(f"{n} {s}" for s, n in counts.items()) + kept)
        return 0
    if args.action == "plan":
        print(plan(study))
        return 0
    if args.action == "status":
        print(status(study))
        return 0
    if args.action == "export":
        if not store_path(study).is_file():
            raise ConfigError(f"study {study.file.name!r} has no store at {store_path(study)}; run it first")
        with Store(store_path(study), readonly=True) as store:
            text = export(study, store, args.format)
        if args.to:
            Path(args.to).write_text(text)
            print(f"wrote {args.to}")
        else:
            print(text, end="")
        return 0
    if args.action == "resume" and not store_path(study).is_file():
        raise ConfigError(f"study {study.file.name!r} has no store at {store_path(study)} to resume; use `kdtemp study run`")
    executor = study.file.executor
    changes = {k: v for k, v in (("kind", args.executor), ("workers", args.workers), ("threads", args.threads)) if v is not None}
    if changes:
        from .config import from_dict

        executor = from_dict(ExecutorConfig, {**to_dict(executor), **changes}, "executor")
    for note in study.notes:  # as `study plan` shows them (collapsed axes, where the results are)
        print(f"note: {note}")
    counts = run_study(study, executor, progress=not args.quiet, retry_failed=args.retry_failed)
    print(f"study {study.file.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; store {store_path(study)}")
    if counts["failed"]:
        with Store(store_path(study), readonly=True) as store:
            failed = [r for r in store.runs(r.run_id for r in study.runs) if r["status"] == "failed"]
        reasons: dict[str, list[str]] = {}
        for run in failed:
            reasons.setdefault(run["error"] or "no reason recorded", []).append(run["label"])
        for reason, labels in reasons.items():
            shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
            print(f"failed ({len(labels)}): {shown}: {reason}", file=sys.stderr)
    return 0 if counts["failed"] == 0 else 1


def cmd_evaluate(args) -> int:
    from .study import load_study
    from .study.evaluation import evaluate_study, evaluation_table

    study = load_study(args.file, output=args.output)
    rows = evaluate_study(study, args.overrides, progress=not args.quiet)
    print(evaluation_table(rows))
    return 0


def cmd_tune(args) -> int:
    from .study import load_study
    from .study.tune import tune_study, tune_text

    study = load_study(args.file, output=args.output, overrides=args.overrides)
    record = tune_study(study, progress=not args.quiet)
    print(tune_text(record))
    print(f"recorded in {study.output / 'tune.json'}")
    return 0


def cmd_examples(args) -> int:
    import shutil

    from .paths import examples, example_summary, locate

    shipped = examples()
    if args.action == "list":
        width = max(len(name) for name in shipped)
        for name, path in shipped.items():
            print(f"{name:<{width}}  {example_summary(path)}")
        print("(use one by name, e.g. `kdtemp teacher digits_teacher` then `kdtemp study plan digits_study`, or copy "
              "it to edit: `kdtemp examples copy NAME [FOLDER]`)")
        return 0
    if not args.name:
        raise ConfigError("examples copy: name an example; `kdtemp examples` lists them")
    source, _ = locate(args.name)
    if source.parent != shipped[next(iter(shipped))].parent:
        raise ConfigError(f"examples copy: {args.name!r} is not a packaged example; allowed: {', '.join(shipped)}")
    target = Path(args.folder) / source.name
    if target.exists():
        raise ConfigError(f"examples copy: {target} exists already; remove it or copy to another folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    print(f"wrote {target}")
    return 0


def cmd_report(args) -> int:
    from .report import build_report

    report = build_report(args.study, args.output, row_scale=args.row_scale)
    print(f"report: {report.html} ({len(report.files)} files in {report.folder})")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def _teacher_shared(path: str, overrides: Sequence[str], model: str | None, remap_classes: bool = False,
                    diagnosable: bool = True):
    """The shared config (task, data and teacher) of a teacher checkpoint, from its kdtemp metadata
    (a checkpoint of an earlier version records no task: image classification's) and overrides;
    ``remap_classes`` reorders its classifier to the data's classes by the names it records. A task
    whose teachers the diagnostics do not apply to is one line, or (``diagnosable=False``, for advice)
    only its task, dataset and name."""
    from .engine.config import SharedConfig
    from .tasks import DEFAULT_TASK, get_task
    from .weights import WeightsError, read_weights

    if not Path(path).is_file():
        raise ConfigError(f"teacher: {path!r} does not exist")
    try:
        _, meta = read_weights(path)
    except WeightsError as error:
        raise ConfigError(f"teacher: {error}") from None
    name = model or meta.get("model")
    if not name:
        raise ConfigError(f"--model: {path!r} has no kdtemp metadata; give --model NAME (and data.* overrides for its data)")
    data = apply_overrides({"data": meta.get("dataset", {"dataset": "digits"})}, list(overrides))["data"]
    task_name = meta.get("task", DEFAULT_TASK)
    task = get_task(task_name) if isinstance(task_name, str) else None
    if task is not None and not task.diagnoses_teacher and not diagnosable:
        from types import SimpleNamespace

        described = SimpleNamespace(task=task_name, data=SimpleNamespace(dataset=data.get("dataset")),
                                    teacher=SimpleNamespace(name=name))
        return described, meta
    if task is None or not task.diagnoses_teacher:
        raise ConfigError(f"teacher: {path!r} is a {task_name} teacher; its diagnostics (class profiles at each T) "
                          "have no form for that task")
    # No training here: the batch size only has to fit the data.
    teacher = {"name": name, "init": "checkpoint", "weights": path, **({"remap_classes": True} if remap_classes else {})}
    shared = from_dict(SharedConfig, {"task": task_name, "data": data, "teacher": teacher, "batch_size": 1})
    try:
        task.preflight([(shared, [])])
    except ConfigError as error:  # the config field's name, as this command spells it
        message = str(error).replace("teacher.remap_classes: true", "--remap-classes")
        raise ConfigError(message.replace("remove remap_classes", "remove --remap-classes")) from None
    return shared, meta


def cmd_diagnose(args) -> int:
    import json

    from .engine.diagnose import diagnose_teacher
    from .temperature import STUDY_TEMPERATURES

    from .report.tables import Metric
    from .tasks import get_task

    shared, meta = _teacher_shared(args.teacher, args.overrides, args.model, args.remap_classes)
    task = get_task(shared.task)
    temperatures = args.temperatures if args.temperatures is not None else list(STUDY_TEMPERATURES)
    result = diagnose_teacher(shared, temperatures, args.top_k, split=args.split, device=args.device)
    print(f"teacher {task.model_label(shared.teacher)} on {shared.data.dataset} ({args.split}, {result['samples']} "
          f"{task.sample_noun}, no augmentation)")
    without_top = result["relative_entropy_without_top"]  # None with 2 classes: p_bar has a single class
    metric = Metric(task.primary_metric)
    print(f"  {metric.short} {result[metric.name]:.2f}{metric.unit}   relative H(p) {result['relative_entropy']:.4f}   "
          f"relative H(p_bar) {'n/a (2 classes)' if without_top is None else f'{without_top:.4f}'}")
    print("  average sorted softmax (top 5 of the top-k profile):")
    for t, profile in result["profiles"].items():
        print(f"    T={t:>4}: " + "  ".join(f"{p:.4f}" for p in profile[:5]))
    if args.json:
        Path(args.json).write_text(json.dumps({"teacher": args.teacher, "origin": meta.get("origin"), **result}, indent=1))
        print(f"wrote {args.json}")
    return 0


def cmd_advise(args) -> int:
    from .advise import Setup, advise

    setup = Setup(teacher_origin=args.teacher_origin, finetune_epochs=args.finetune_epochs, optimizer=args.optimizer,
                  epochs=args.epochs, batch_size=args.batch_size, granularity=args.granularity,
                  class_overlap={"yes": True, "no": False}.get(args.overlap), student_init=args.student_init,
                  dataset=args.dataset, teacher=args.teacher_name)
    if args.teacher:
        from .engine.diagnose import diagnose_teacher

        from .tasks import get_task

        shared, meta = _teacher_shared(args.teacher, args.overrides, args.model, diagnosable=False)
        setup.task = shared.task
        setup.dataset = setup.dataset or shared.data.dataset
        setup.teacher = setup.teacher or shared.teacher.name
        if get_task(shared.task).diagnoses_teacher:
            diagnostics = diagnose_teacher(shared, [1.0], device=args.device)
            setup.teacher_entropy = diagnostics["relative_entropy"]
            setup.teacher_tail_entropy = diagnostics["relative_entropy_without_top"]
        else:
            print(f"note: the teacher is a {shared.task} model: its class-profile measures have no form there, so the "
                  "rules that read them are left out")
        origin = meta.get("origin") or {}
        if setup.teacher_origin is None and origin.get("kind"):
            setup.teacher_origin = "scratch" if origin["kind"] == "scratch" else "pretrained"
        if setup.finetune_epochs is None and origin.get("kind") == "finetuned":
            setup.finetune_epochs = origin.get("epochs")
    print(advise(setup, args.store).text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="kdtemp", description="Knowledge distillation with a measured temperature.")
    parser.add_argument("--version", action="version", version=f"kdtemp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, handler, text in (("teacher", cmd_teacher, "prepare a teacher"), ("distill", cmd_distill, "distill a cohort")):
        p = sub.add_parser(name, help=text)
        p.add_argument("config", help="YAML config file")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. student.epochs=64")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(handler=handler)
    p = sub.add_parser("study", help="plan, run, resume or export a study file")
    p.add_argument("action", choices=["plan", "run", "resume", "status", "export", "rebuild"],
                   help="rebuild: a new store from the run folders, when study.sqlite is damaged")
    p.add_argument("file", help="study YAML file")
    p.add_argument("overrides", nargs="*", help="dotted overrides of the study file, e.g. base.student.epochs=2 seeds=[0]")
    p.add_argument("--output", help="study folder (default: the file's output, else studies/<name>)")
    p.add_argument("--executor", choices=["inline", "local", "ray"], help="override the file's executor")
    p.add_argument("--workers", type=int, help="parallel cohorts for local/ray")
    p.add_argument("--threads", type=int, help="torch threads per cohort")
    p.add_argument("--retry-failed", action="store_true", help="train failed runs again")
    p.add_argument("--format", choices=["csv", "json"], default="csv", help="export format")
    p.add_argument("--to", help="export to this file instead of standard output")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_study)
    p = sub.add_parser("evaluate", help="evaluate a study's finished runs again under other evaluation settings, "
                                        "training nothing")
    p.add_argument("file", help="study YAML file")
    p.add_argument("overrides", nargs="*", help="evaluation settings, fields of data: data.generation.protocol=minillm "
                                                "data.generation.seeds=[10,20,30,40,50] data.eval_sets=[dolly]")
    p.add_argument("--output", help="study folder (default: the file's output, else studies/<name>)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_evaluate)
    p = sub.add_parser("tune", help="the best temperature of a study's axis by successive halving on a validation "
                                    "split, at a fraction of the grid's cost")
    p.add_argument("file", help="study YAML file (its temperature axis gives the candidates; its tune: block the search)")
    p.add_argument("overrides", nargs="*", help="dotted overrides (tune.eta=2, base.data.validation=0.1, seeds=[0,1])")
    p.add_argument("--output", help="study folder (default: the file's output, else studies/<name>)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_tune)
    p = sub.add_parser("examples", help="the example study, teacher and distill files shipped with kdtemp")
    p.add_argument("action", nargs="?", choices=["list", "copy"], default="list")
    p.add_argument("name", nargs="?", help="example to copy")
    p.add_argument("folder", nargs="?", default=".", help="where to copy it (default: here)")
    p.set_defaults(handler=cmd_examples)
    p = sub.add_parser("report", help="tables, figures and an HTML page from a study's store")
    p.add_argument("study", help="study folder, its study.sqlite, or the study file")
    p.add_argument("--output", help="report folder (default: <study>/report)")
    p.add_argument("--row-scale", action="store_true", help="colour each heatmap row on its own scale")
    p.set_defaults(handler=cmd_report)
    p = sub.add_parser("diagnose", help="a teacher's relative entropies and sorted softmax profiles")
    p.add_argument("teacher", help="teacher checkpoint (kdtemp's teacher.pt, or any with --model)")
    p.add_argument("overrides", nargs="*", help="data overrides, e.g. data.root=/data/cifar10")
    p.add_argument("--model", help="model name when the checkpoint has no kdtemp metadata")
    p.add_argument("--remap-classes", action="store_true",
                   help="reorder the checkpoint's classifier to the data's classes by the names it records")
    p.add_argument("--temperatures", type=float, nargs="+")  # default: the study's grid (see cmd_diagnose)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="write every value to this JSON file")
    p.set_defaults(handler=cmd_diagnose)
    p = sub.add_parser("advise", help="a recommended temperature range for a setup, with reasons")
    p.add_argument("--teacher-origin", choices=["pretrained", "scratch"])
    p.add_argument("--finetune-epochs", type=int, help="epochs the teacher was fine-tuned on the target")
    p.add_argument("--optimizer", choices=["adamw", "sgd"])
    p.add_argument("--epochs", type=int, help="planned distillation epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--granularity", choices=["fine", "coarse"])
    p.add_argument("--student-init", choices=["random", "target", "pretrained", "finetuned"],
                   help="how the student starts: random, target-trained, ImageNet-pretrained, or pretrained then "
                        "fine-tuned on the target")
    p.add_argument("--dataset", help="match past results (--store) on this dataset")
    p.add_argument("--teacher-name", help="match past results (--store) on this teacher model")
    p.add_argument("--overlap", choices=["yes", "no", "unknown"], default="unknown",
                   help="do the target's classes exist in the teacher's pretraining data?")
    p.add_argument("--teacher", help="a teacher checkpoint: its entropies and recorded origin inform the advice")
    p.add_argument("--model", help="the teacher's model name when its checkpoint has no kdtemp metadata")
    p.add_argument("overrides", nargs="*", help="data overrides for --teacher")
    p.add_argument("--store", nargs="*", default=[], help="study folders whose results to draw on")
    p.add_argument("--device", default="auto")
    p.set_defaults(handler=cmd_advise)
    p = sub.add_parser("demo", help="the embedded default: digits teacher, temperature study, report")
    p.add_argument("--output", default="runs/demo")
    p.add_argument("--epochs", type=int, default=5, help="distillation epochs")
    p.add_argument("--seeds", type=int, default=2, help="seeds per temperature")
    p.add_argument("--teacher-epochs", type=int, default=12)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [e for e in extra if "=" in e and not e.startswith("-")]
    if len(overrides) != len(extra) or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(e for e in extra if e not in overrides or not hasattr(args, 'overrides'))}")
    if overrides:
        args.overrides = list(args.overrides) + overrides  # field=value given after options
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"kdtemp: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdtemp: interrupted; finished work is kept, and running the command again continues the rest",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
