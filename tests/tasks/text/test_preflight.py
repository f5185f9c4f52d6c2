"""Preflight of text studies (``kdtemp.tasks.text.preflight``): each mistake is one line naming the
field, from ``kdtemp study plan``, before anything is written."""

import json
import subprocess
import sys

import pytest
import torch

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


# Malformed inputs of every kind the readers and preflight meet (issue: text and language-model inputs
# held to the image standard): each is one line naming the field, the file and the line, before any work.

def _own_folder(root, train_lines, test_lines, suffix=".tsv", encoding="utf-8"):
    root.mkdir(parents=True, exist_ok=True)
    (root / f"train{suffix}").write_bytes("\n".join(train_lines).encode(encoding) + b"\n")
    (root / f"test{suffix}").write_bytes("\n".join(test_lines).encode(encoding) + b"\n")
    return root


def own_study(folder, data_root, tokenizer_folder, **data):
    return study(folder, data_root, tokenizer_folder, **{"data.dataset": "text_classification", **{
        f"data.{key}": value for key, value in data.items()}})


GOOD_ROWS = ["text\tlabel"] + [f"the film was {'good' if i % 2 else 'bad'}\t{i % 2}" for i in range(20)]


def test_a_row_missing_its_label_is_refused_not_a_class(tokenizer_folder, tmp_path, capsys):
    rows = GOOD_ROWS[:5] + ["the film was good"] + GOOD_ROWS[5:]
    root = _own_folder(tmp_path / "data", rows, GOOD_ROWS)
    line = plan_error(own_study(tmp_path, root, tokenizer_folder), capsys, tmp_path / "out")
    assert line.endswith(f"data.root: {root / 'train.tsv'} line 6 has 1 columns; its header has 2 (label missing)")


def test_an_empty_label_is_refused(tokenizer_folder, tmp_path, capsys):
    root = _own_folder(tmp_path / "data", GOOD_ROWS + ["the film was good\t "], GOOD_ROWS)
    line = plan_error(own_study(tmp_path, root, tokenizer_folder), capsys, tmp_path / "out")
    assert line.endswith(f"data.label_column: {root / 'train.tsv'} line 22 has an empty 'label'")


def test_a_tab_inside_a_text_is_refused_not_a_class(sst2_folder, tokenizer_folder, tmp_path, capsys):
    root = tmp_path / "sst2"
    root.mkdir()
    lines = (sst2_folder / "train.tsv").read_text().splitlines()
    lines[3] = lines[3].replace(" ", "\t", 1)
    (root / "train.tsv").write_text("\n".join(lines) + "\n")
    (root / "dev.tsv").write_text((sst2_folder / "dev.tsv").read_text())
    line = plan_error(study(tmp_path, root, tokenizer_folder), capsys, tmp_path / "out")
    assert line.endswith(f"data.root: {root / 'train.tsv'} line 4 has 3 columns; its header has 2 (a tab inside a "
                         "text? remove it (GLUE's TSVs quote nothing))")


def test_text_that_is_not_utf8_is_one_line(tokenizer_folder, tmp_path, capsys):
    rows = GOOD_ROWS[:3] + ["un film très beau\t1"] + GOOD_ROWS[3:]
    root = _own_folder(tmp_path / "data", rows, GOOD_ROWS, encoding="latin-1")
    line = plan_error(own_study(tmp_path, root, tokenizer_folder), capsys, tmp_path / "out")
    assert line.endswith(f"data.root: {root / 'train.tsv'} line 4 is not UTF-8 (byte 0xe8 at column 11); "
                         "save the file as UTF-8")


def test_a_byte_order_mark_is_removed(tokenizer_folder, tmp_path, capsys):
    root = _own_folder(tmp_path / "data", ["\ufefftext,label"] + [r.replace("\t", ",") for r in GOOD_ROWS[1:]],
                       [r.replace("\t", ",") for r in GOOD_ROWS], suffix=".csv")
    assert main(["study", "plan", own_study(tmp_path, root, tokenizer_folder), "--output", str(tmp_path / "o")]) == 0
    assert "2 classes, 20 train / 20 test inputs" in capsys.readouterr().out


def _jsonl(lines):
    return [json.dumps(line) if isinstance(line, dict) else line for line in lines]


GOOD_RECORDS = [{"text": f"the film was {'good' if i % 2 else 'bad'}", "label": i % 2} for i in range(20)]


@pytest.mark.parametrize("bad, says", [
    ('{"text": "a film", "label": 1', "line 3 is not JSON (Expecting ',' delimiter at column 30)"),
    ('{"text": "a film", "text": "", "label": 1}', "line 3 has the key 'text' twice; each key once"),
    ('{"text": "a film", "label": ' + "[" * 5000 + "]" * 5000 + "}", "line 3 nests deeper than 32 levels"),
    ('{"text": "a film"}', "line 3 has no 'label'"),
    ('[1, 2]', "line 3: a line must be a JSON object; got list"),
])
def test_your_own_jsonl_is_read_strictly(tokenizer_folder, tmp_path, capsys, bad, says):
    lines = _jsonl(GOOD_RECORDS[:2] + [bad] + GOOD_RECORDS[2:])
    root = _own_folder(tmp_path / "data", lines, _jsonl(GOOD_RECORDS), suffix=".jsonl")
    line = plan_error(own_study(tmp_path, root, tokenizer_folder), capsys, tmp_path / "out")
    assert f"{root / 'train.jsonl'} {says}" in line, line


def test_a_column_setting_a_glue_task_does_not_use_is_refused(sst2_folder, tokenizer_folder, tmp_path, capsys):
    line = plan_error(study(tmp_path, sst2_folder, tokenizer_folder, **{"data.text_column": "sentence"}), capsys,
                      tmp_path / "out")
    assert line.endswith("data.text_column: applies to text_classification files; GLUE sst2's columns are GLUE's "
                         "(remove it); got 'sentence'")


def test_a_misspelled_task_names_task(sst2_folder, tokenizer_folder, tmp_path, capsys):
    line = plan_error(study(tmp_path, sst2_folder, tokenizer_folder, task="text_clasification"), capsys,
                      tmp_path / "out")
    assert line.endswith("base.task: unknown task 'text_clasification'; allowed: causal_lm, image_classification, "
                         "text_classification")


def test_model_configs_are_built_before_any_work(sst2_folder, tokenizer_folder, tmp_path, capsys):
    path = study(tmp_path, sst2_folder, tokenizer_folder, **{"teacher.config": {**tiny_bert(), "model_type": "bertt"}})
    assert "teacher.config: unknown model_type 'bertt'" in plan_error(path, capsys, tmp_path / "out")
    path = study(tmp_path, sst2_folder, tokenizer_folder, **{"student.model.config": {**tiny_bert(layers=1),
                                                                                       "num_attention_heads": 5}})
    line = plan_error(path, capsys, tmp_path / "out")
    assert line.startswith("kdtemp: error: student.model.config: ") and "multiple of the number of attention heads" in line


def test_a_tokenizer_folder_transformers_cannot_load(sst2_folder, tmp_path, capsys):
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text('{"model_max_length": 512}')
    line = plan_error(study(tmp_path, sst2_folder, folder), capsys, tmp_path / "out")
    assert line.startswith(f"kdtemp: error: data.tokenizer: {str(folder)!r} is not a tokenizer folder Transformers can load")


def test_a_tokenizer_that_reads_the_data_as_unknown_tokens(sst2_folder, tmp_path, capsys):
    from helpers.text import train_tokenizer

    folder = train_tokenizer(tmp_path / "tiny-tok", texts=["zzz qqq"] * 4)  # a vocabulary without the data's words
    line = plan_error(study(tmp_path, sst2_folder, folder), capsys, tmp_path / "out")
    assert f"data.tokenizer: {str(folder)!r} reads " in line and "as its unknown token '[UNK]'" in line


def _saved_bert(folder, tokenizer_folder, capsys, pickled=None):
    """A ``save_pretrained`` folder of a tiny BERT classifier with ``tokenizer_folder``'s tokenizer;
    with ``pickled(path)``, its weights are a ``pytorch_model.bin`` that function writes instead."""
    import transformers

    model = transformers.BertForSequenceClassification(transformers.BertConfig(**{
        k: v for k, v in tiny_bert().items() if k != "model_type"}, num_labels=2))
    model.save_pretrained(str(folder))
    transformers.AutoTokenizer.from_pretrained(str(tokenizer_folder)).save_pretrained(str(folder))
    if pickled is not None:
        for path in folder.glob("*.safetensors"):
            path.unlink()
        pickled(folder / "pytorch_model.bin")
    capsys.readouterr()  # Transformers' progress bars
    return folder


def test_a_student_whose_own_tokenizer_differs_from_the_data_s(sst2_folder, tokenizer_folder, tmp_path, capsys):
    from helpers.text import train_tokenizer

    student = _saved_bert(tmp_path / "student", train_tokenizer(tmp_path / "other", texts=["other words here"] * 4),
                          capsys)
    path = study(tmp_path, sst2_folder, tokenizer_folder, **{"student.model": {"name": str(student)}})
    line = plan_error(path, capsys, tmp_path / "out")
    assert line.startswith(f"kdtemp: error: student.model: {str(student)!r} uses the tokenizer {str(student)!r}, "
                           f"which differs from the data's {str(tokenizer_folder)!r}")


def test_unsafe_weights_are_one_line_before_any_work(sst2_folder, tokenizer_folder, tmp_path, capsys, marker):
    from helpers.trust import plant

    folder = _saved_bert(tmp_path / "pickled", tokenizer_folder, capsys,
                         pickled=lambda path: plant(path, {"w": torch.zeros(1)}, marker))
    line = plan_error(study(tmp_path, sst2_folder, tokenizer_folder, **{"student.model": {"name": str(folder)}}),
                      capsys, tmp_path / "out")
    assert line.startswith(f"kdtemp: error: student.model.name: {str(folder / 'pytorch_model.bin')!r} holds Python "
                           "objects or is damaged")
    weights = plant(tmp_path / "teacher.pt", {"w": torch.zeros(1)}, marker)
    line = plan_error(study(tmp_path, sst2_folder, tokenizer_folder, **{
        "teacher": {"name": "tiny-teacher", "init": "checkpoint", "weights": str(weights)}}), capsys, tmp_path / "out")
    assert line.startswith(f"kdtemp: error: teacher.weights: {str(weights)!r} holds Python objects")
    assert not marker.exists()


def test_a_model_folder_with_its_own_code_is_refused_while_remote_code_is_off(sst2_folder, tokenizer_folder, tmp_path,
                                                                               capsys, marker):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "kdtemp-custom", "architectures": ["Custom"],
                                                    "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}))
    (folder / "configuration_custom.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    line = plan_error(study(tmp_path, sst2_folder, tokenizer_folder, **{"student.model": {"name": str(folder)}}),
                      capsys, tmp_path / "out")
    assert line.endswith(f"student.model.name: {str(folder)!r} needs its own Python code (custom modelling files); "
                         "kdtemp runs no code from a model unless student.model.trust_remote_code: true")
    assert not marker.exists()


def test_a_model_built_from_a_config_is_named_by_its_shape_in_plan(sst2_folder, tokenizer_folder, tmp_path, capsys):
    path = study(tmp_path, sst2_folder, tokenizer_folder,
                 teacher={"init": "random", "config": tiny_bert()})  # the default name: a hub model's
    assert main(["study", "plan", path, "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "teacher bert 2x32," in out and "bert-base-uncased" not in out
    assert "could not be counted" not in out and "~0 FLOPs" not in out  # counted from each model's config
    assert "input-steps" in out and "image-steps" not in out  # text is counted in inputs, not images
