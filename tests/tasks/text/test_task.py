"""Text classification on the engine (``kdtemp.tasks.text.task``): a teacher fine-tuned on the task,
then a cohort of students that equals the same runs trained alone, bit for bit on the CPU; a teacher
whose labels differ, a tokenizer that does not fit, and the image path never importing Transformers."""

import subprocess
import sys

import pytest
import torch

from kdtemp.config import ConfigError, from_dict
from kdtemp.engine import CohortConfig, run_cohort
from kdtemp.engine.teacher import TeacherConfig, prepare_teacher

from helpers.engine import assert_cohort_equals_each_alone
from helpers.text import tiny_bert, write_sst2


def shared(sst2_folder, tokenizer_folder, cache, **fields):
    data = {"dataset": "sst2", "root": str(sst2_folder), "tokenizer": str(tokenizer_folder), "cache_dir": str(cache),
            "max_length": 32}
    return {"task": "text_classification", "data": data, "batch_size": 16, "device": "cpu", **fields}


def student(**fields):
    return {"model": {"name": "tiny-student", "init": "random", "config": tiny_bert(layers=1)}, "epochs": 2,
            "optimizer": {"lr": 3e-3}, **fields}


@pytest.fixture(scope="module")
def teacher(sst2_folder, tokenizer_folder, tmp_path_factory):
    """A tiny BERT trained on the SST-2-layout data (its teacher.pt records config, labels, tokenizer)."""
    folder = tmp_path_factory.mktemp("teacher")
    config = from_dict(TeacherConfig, {**shared(sst2_folder, tokenizer_folder, folder / "cache"), "epochs": 6,
                                       "model": {"name": "tiny-teacher", "init": "random", "config": tiny_bert()},
                                       "optimizer": {"lr": 3e-3}, "output": str(folder)})
    path, result = prepare_teacher(config, progress=False)
    assert result.primary_metric == "accuracy" and result.curve[-1]["accuracy"] >= 80  # it learned the task
    return path


def test_a_cohort_of_text_students_equals_each_trained_alone(sst2_folder, tokenizer_folder, teacher, tmp_path):
    members = [student(temperature=1.0), student(temperature=4.0, seed=1), student(objective="dkd", temperature=2.0),
               student(temperature_policy="dts", dts={"initial": 3, "minimum": 1, "maximum": 3}, seed=2),
               student(objective="ctkd", temperature_policy="ctkd", seed=3)]
    # the tokenizer comes from the teacher's checkpoint: data.tokenizer left out
    base = shared(sst2_folder, tokenizer_folder, tmp_path / "cache")
    base["data"].pop("tokenizer")
    config = {**base, "teacher": {"name": "tiny-teacher", "init": "checkpoint", "weights": str(teacher)}}
    together = assert_cohort_equals_each_alone(config, members, tmp_path)
    assert together[0].teacher["accuracy"] >= 80


def test_a_teacher_with_other_labels_is_refused(sst2_folder, mrpc_folder, tokenizer_folder, teacher, tmp_path):
    config = shared(mrpc_folder, tokenizer_folder, tmp_path / "cache",
                    teacher={"name": "tiny-teacher", "init": "checkpoint", "weights": str(teacher)},
                    members=[student()])
    config["data"]["dataset"] = "mrpc"
    with pytest.raises(ConfigError, match=r"teacher.weights: its labels \(negative, positive\) differ from the "
                                          r"data's \(not_equivalent, equivalent\)"):
        run_cohort(from_dict(CohortConfig, config), progress=False)


def test_the_image_path_imports_neither_transformers_nor_datasets():
    code = ("import sys, kdtemp.cli, kdtemp.engine, kdtemp.study, kdtemp.report, kdtemp.tasks; "
            "print(sorted(m for m in ('transformers', 'datasets', 'tokenizers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_diagnose_and_advise_read_a_text_teacher_through_its_task(teacher, tmp_path, capsys):
    from kdtemp.cli import main

    assert main(["diagnose", str(teacher), "--device", "cpu", "--temperatures", "1", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("teacher tiny-teacher on sst2 (train, 96 inputs, no augmentation)")
    assert "  accuracy " in out and "relative H(p)" in out and "T=   4:" in out
    assert main(["advise", "--teacher", str(teacher), "--device", "cpu"]) == 0
    advice = capsys.readouterr().out
    assert "T" in advice
    # the advice reads the text teacher's own checkpoint: its origin (trained from scratch by prepare)
    assert advice.startswith("recommended temperature: ") and "the teacher was trained from scratch" in advice


def test_diagnose_refuses_a_teacher_of_a_task_without_diagnostics_in_one_line(tmp_path, capsys):
    from kdtemp.cli import main

    path = tmp_path / "teacher.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "kdtemp": {"kind": "teacher", "task": "causal_lm", "model": "gpt2",
                                                           "dataset": {"dataset": "dolly"}}}, path)
    assert main(["diagnose", str(path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kdtemp: error: teacher: {str(path)!r} is a causal_lm teacher; its diagnostics (class profiles at "
                   "each T) have no form for that task"]
