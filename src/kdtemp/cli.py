"""``kdtemp``: the command line.

    kdtemp teacher CONFIG [field.path=value ...]   prepare a teacher
    kdtemp distill CONFIG [field.path=value ...]   distill a cohort of students
    kdtemp study plan|run|resume|status|export FILE a grid of runs from one study file
    kdtemp report STUDY                            tables, figures and an HTML page from a study
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


def _load(cls, path: str, overrides: Sequence[str]):
    data = apply_overrides(load_yaml(path), list(overrides))
    return from_dict(cls, data), data


def _save_resolved(config, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    return path


def format_results(results, temperatures: bool = True) -> str:
    """A plain-text table of run results."""
    lines = [f"{'run':<34} {'status':<7} {'final top1':>10} {'best top1':>10} {'best ep':>8}"]
    for r in results:
        final = f"{r.final_top1:.2f}" if r.final_top1 is not None else "-"
        best = f"{r.best_top1:.2f}" if r.best_top1 is not None else "-"
        lines.append(f"{r.label:<34} {r.status:<7} {final:>10} {best:>10} {r.best_epoch or '-':>8}")
        if r.error:
            lines.append(f"    failed: {r.error}")
    return "\n".join(lines)


def cmd_teacher(args) -> int:
    from .engine import TeacherConfig, prepare_teacher

    config, _ = _load(TeacherConfig, args.config, args.overrides)
    _save_resolved(config, Path(config.output), "config.yaml")
    path, result = prepare_teacher(config, progress=not args.quiet)
    print(f"teacher {config.model.name}: top-1 {result.final_top1:.2f}% after {config.epochs} epochs -> {path}")
    return 0


def cmd_distill(args) -> int:
    from .engine import DistillConfig, run_cohort

    config, _ = _load(DistillConfig, args.config, args.overrides)
    _save_resolved(config, Path(config.output), "config.yaml")
    results = run_cohort(config.cohort(), output=Path(config.output) / "runs", progress=not args.quiet)
    print(format_results(results))
    return 0 if all(r.status == "done" for r in results) else 1


def cmd_demo(args) -> int:
    from . import demo
    from .engine import DistillConfig, TeacherConfig, prepare_teacher, run_cohort

    output = Path(args.output)
    teacher = from_dict(TeacherConfig, demo.teacher_config(output, args.teacher_epochs))
    _save_resolved(teacher, output / "teacher", "config.yaml")
    print(f"[1/2] preparing a {teacher.model.name} teacher on digits ({teacher.epochs} epochs)")
    path, result = prepare_teacher(teacher, progress=not args.quiet)
    print(f"      teacher top-1 {result.final_top1:.2f}% -> {path}")
    distill = from_dict(DistillConfig, demo.distill_config(output, path, args.epochs))
    _save_resolved(distill, output / "distill", "config.yaml")
    cohort = distill.cohort()
    print(f"[2/2] distilling a cohort of {len(cohort.members)} resnet20 students, T in {demo.STUDY_TEMPERATURES}")
    results = run_cohort(cohort, output=output / "distill" / "runs", progress=not args.quiet)
    print(format_results(results))
    finished = [r for r in results if r.status == "done"]
    if finished:
        best = max(finished, key=lambda r: r.final_top1)
        print(f"best final top-1: {best.final_top1:.2f}% ({best.label}); results in {output}")
    return 0


def cmd_study(args) -> int:
    from .study import ExecutorConfig, Store, export, load_study, plan, run_study, status, store_path

    study = load_study(args.file, output=args.output)
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
    counts = run_study(study, executor, progress=not args.quiet, retry_failed=args.retry_failed)
    print(f"study {study.file.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; store {store_path(study)}")
    return 0 if counts["failed"] == 0 else 1


def cmd_report(args) -> int:
    from .report import build_report

    report = build_report(args.study, args.output)
    print(f"report: {report.html} ({len(report.files)} files in {report.folder})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kdtemp", description="Knowledge distillation with a measured temperature.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, handler, text in (("teacher", cmd_teacher, "prepare a teacher"), ("distill", cmd_distill, "distill a cohort")):
        p = sub.add_parser(name, help=text)
        p.add_argument("config", help="YAML config file")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. student.epochs=64")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(handler=handler)
    p = sub.add_parser("study", help="plan, run, resume or export a study file")
    p.add_argument("action", choices=["plan", "run", "resume", "status", "export"])
    p.add_argument("file", help="study YAML file")
    p.add_argument("--output", help="study folder (default: the file's output, else studies/<name>)")
    p.add_argument("--executor", choices=["inline", "local", "ray"], help="override the file's executor")
    p.add_argument("--workers", type=int, help="parallel cohorts for local/ray")
    p.add_argument("--threads", type=int, help="torch threads per cohort")
    p.add_argument("--retry-failed", action="store_true", help="train failed runs again")
    p.add_argument("--format", choices=["csv", "json"], default="csv", help="export format")
    p.add_argument("--to", help="export to this file instead of standard output")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_study)
    p = sub.add_parser("report", help="tables, figures and an HTML page from a study's store")
    p.add_argument("study", help="study folder, its study.sqlite, or the study file")
    p.add_argument("--output", help="report folder (default: <study>/report)")
    p.set_defaults(handler=cmd_report)
    p = sub.add_parser("demo", help="the embedded default: digits teacher + temperature cohort")
    p.add_argument("--output", default="runs/demo")
    p.add_argument("--epochs", type=int, default=8, help="distillation epochs")
    p.add_argument("--teacher-epochs", type=int, default=12)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"kdtemp: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
