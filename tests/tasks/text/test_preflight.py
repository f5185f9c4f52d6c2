"""Preflight of text studies (``kdtemp.tasks.text.preflight``): each mistake is one line naming the
field, from ``kdtemp study plan``, before anything is written."""

import subprocess
import sys

import pytest

from kdtemp.cli import main
from kdtemp.engine.teacher import TeacherConfig, prepare_teacher
from kdtemp.config import from_dict

from helpers.text import hf_environment, tiny_bert
from helpers.trust import write_yaml


def study(folder, sst2_folder, tokenizer_folder, **changes):
    base = {"task": "text_classification",
            "data": {"dataset": "sst2", "root": str(sst2_folder), "tokenizer": str(tokenizer_folder), "max_length": 32},
            "teacher": {"name": "tiny-teacher", "init": "random", "config": tiny_bert()}, "batch_size": 16,
            "student": {"model": {"name": "tiny-student", "init": "random", "config": tiny_bert(layers=1)}, "epochs": 1}}
    for key, value in changes.items():
        node = base
        *parents, last = key.split(".")
        for name in parents:
            node = node[name]
        node[last] = value
    return write_yaml(folder / "study.yaml", {"name": "text-preflight", "base": base, "grid": {"student.temperature": [1, 4]},
                                               "executor": {"kind": "inline"}})


def plan_error(path, capsys, output):
    assert main(["study", "plan", path, "--output", str(output)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and not output.exists()  # one line, nothing written
    return err[0]


def test_a_tokenizer_that_does_not_fit_the_model(sst2_folder, tokenizer_folder, tmp_path, capsys):
    path = study(tmp_path, sst2_folder, tokenizer_folder, **{"student.model.config": tiny_bert(vocab_size=50, layers=1)})
    line = plan_error(path, capsys, tmp_path / "out")
    assert "data.tokenizer:" in line and "but student.model 'tiny-student' has embeddings for 50 tokens" in line
    path = study(tmp_path, sst2_folder, tokenizer_folder, **{"data.max_length": 128})
    assert "data.max_length: 128 exceeds the 64 positions of teacher 'tiny-teacher'" in plan_error(path, capsys,
                                                                                                tmp_path / "out")


def test_a_teacher_that_learned_other_labels(sst2_folder, mrpc_folder, tokenizer_folder, tmp_path, capsys):
    config = from_dict(TeacherConfig, {"task": "text_classification", "device": "cpu", "epochs": 1, "batch_size": 16,
                                       "data": {"dataset": "sst2", "root": str(sst2_folder),
                                                "tokenizer": str(tokenizer_folder), "cache_dir": str(tmp_path / "c")},
                                       "model": {"name": "tiny-teacher", "init": "random", "config": tiny_bert()},
                                       "output": str(tmp_path / "teacher")})
    weights, _ = prepare_teacher(config, progress=False)
    path = study(tmp_path, mrpc_folder, tokenizer_folder, **{"data.dataset": "mrpc",
                 "teacher": {"name": "tiny-teacher", "init": "checkpoint", "weights": str(weights)}})
    line = plan_error(path, capsys, tmp_path / "out")
    assert line.endswith("teacher.weights: its labels (negative, positive) differ from the data's "
                         "(not_equivalent, equivalent)")


def test_an_unknown_glue_task_and_a_missing_column(sst2_folder, tokenizer_folder, tmp_path, capsys):
    path = study(tmp_path, sst2_folder, tokenizer_folder, **{"data.dataset": "sst5"})
    assert "data.dataset: unknown text dataset 'sst5'" in plan_error(path, capsys, tmp_path / "out")
    path = study(tmp_path, sst2_folder, tokenizer_folder, **{"data.dataset": "qnli"})
    assert "has no column 'question'" in plan_error(path, capsys, tmp_path / "out")


def test_a_model_name_neither_cached_nor_reachable_offline(sst2_folder, tokenizer_folder, tmp_path):
    path = study(tmp_path, sst2_folder, tokenizer_folder,
                 teacher={"name": "kdtemp-tests/no-such-model", "init": "pretrained"})
    env = hf_environment(tmp_path / "hf")
    done = subprocess.run([sys.executable, "-m", "kdtemp", "study", "plan", path, "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1, done.stderr
    assert "teacher.name: 'kdtemp-tests/no-such-model' is neither in the local Hugging Face cache nor reachable" in lines[0]
    assert not (tmp_path / "out").exists()
