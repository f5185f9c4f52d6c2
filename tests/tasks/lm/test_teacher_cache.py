"""Students trained from a teacher-output cache (``data.teacher_cache``): with k = the vocabulary they train
as from the live teacher (fixed T, reverse KL, JSD, DTS); once written, the teacher is never loaded; a write
killed part-way resumes without rewriting the shards that are whole, and a damaged shard is named and
alone written again; bad input is one line before any work."""

import json

import pytest
import torch

from kdtemp.config import ConfigError, from_dict
from kdtemp.engine import CohortConfig, run_cohort
from kdtemp.tasks import get_task
from kdtemp.tasks.lm import task as lm_task
from kdtemp.tasks.lm import teacher_cache

from helpers.lm import lm_data, tiny_gpt2

TEACHER = {"name": "tiny-teacher", "init": "random", "config": tiny_gpt2(width=48, dropout=0.0)}
VOCABULARY = 350  # the test tokenizer's


def student(**fields):
    return {"model": {"name": "tiny-student", "init": "random", "config": tiny_gpt2(layers=1, dropout=0.0)},
            "epochs": 2, "optimizer": {"name": "adamw", "lr": 3e-3}, **fields}


MEMBERS = [student(temperature=2.0), student(objective="reverse_kl", temperature=1.0, seed=1),
           student(objective="jsd", objective_params={"beta": 0.3}, temperature=4.0, seed=2),
           student(temperature_policy="dts", dts={"initial": 3, "minimum": 1, "maximum": 3}, seed=3)]


def config(instructions, tokenizer, cache, members=MEMBERS, **settings) -> CohortConfig:
    data = lm_data(instructions, tokenizer, cache)
    if settings:
        data["teacher_cache"] = settings
    return from_dict(CohortConfig, {"task": "causal_lm", "data": data, "batch_size": 8, "device": "cpu",
                                    "teacher": TEACHER, "members": members})


def curves(results):
    return [[row["train_loss"] for row in r.curve] for r in results]


def test_with_k_the_vocabulary_students_train_as_from_the_live_teacher(instructions, lm_tokenizer, tmp_path, monkeypatch):
    live = run_cohort(config(instructions, lm_tokenizer, tmp_path / "cache"), progress=False)
    cached = run_cohort(config(instructions, lm_tokenizer, tmp_path / "cache", k=VOCABULARY, dtype="float32"),
                        progress=False)
    for a, b in zip(curves(live), curves(cached)):
        assert b[0] == pytest.approx(a[0], rel=1e-5)  # the same weights: the loss differs by rounding alone
        assert b[1:] == pytest.approx(a[1:], rel=1e-3)  # after updates that differed by rounding
    T_live, T_cached = ([row["temperature"] for row in r.curve] for r in (live[3], cached[3]))
    assert T_cached == pytest.approx(T_live, rel=1e-5) and T_live[0] < 3.0  # DTS moved T alike
    assert cached[0].teacher["teacher_cache"] and cached[0].teacher["teacher_cache_bytes_per_token"] > 0
    # written once: another cohort reads it and never loads the teacher
    monkeypatch.setattr(lm_task.CausalLanguageModeling, "_load", _no_teacher(lm_task.CausalLanguageModeling._load))
    again = run_cohort(config(instructions, lm_tokenizer, tmp_path / "cache", [MEMBERS[0]], k=VOCABULARY, dtype="float32"),
                       progress=False)
    assert curves(again)[0] == curves(cached)[0]


def _no_teacher(load):
    def guarded(self, config, data, runtime, role):
        assert role != "teacher", "the teacher was loaded although its cache is whole"
        return load(self, config, data, runtime, role)
    return guarded


def test_float16_offsets_train_as_float32_within_their_rounding(instructions, lm_tokenizer, tmp_path):
    """The default storage: logits as float16 offsets below each row's largest, ids and counts in 2 bytes."""
    members = [student(temperature=2.0, epochs=1), student(objective="reverse_kl", temperature=1.0, seed=1, epochs=1)]
    exact = run_cohort(config(instructions, lm_tokenizer, tmp_path / "cache", members, k=VOCABULARY, dtype="float32"),
                       progress=False)
    half = run_cohort(config(instructions, lm_tokenizer, tmp_path / "cache", members, k=VOCABULARY), progress=False)
    for a, b in zip(curves(exact), curves(half)):
        assert b[0] == pytest.approx(a[0], rel=1e-3) and b[0] != a[0]
    assert half[0].teacher["teacher_cache_dtype"] == "float16"
    assert half[0].teacher["teacher_cache_bytes_per_token"] == VOCABULARY * 4 + 16 * 4 + 2 + 8  # 16 (empty) tail bins


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_the_stored_form_is_exact_for_ids_and_counts_and_within_rounding_for_logits(dtype):
    """At GPT-2's vocabulary (ids past 32,767): what a shard holds decodes to the table it was made of."""
    from kdtemp.objectives.teacher_cache import top_k_tail

    vocabulary, k, bins = 50_257, 32, 8
    logits = torch.randn(6, vocabulary, generator=torch.Generator().manual_seed(0)) * 3
    logits[0, 50_000] = 40.0  # a large id on top
    table = top_k_tail(logits, k, bins, 1.0)
    label = logits[:, 7]
    stored = teacher_cache.encode(table, label, dtype)
    assert stored["ids"].dtype == torch.int16 and stored["counts"].dtype == torch.int16
    per_row = sum(t[0].numel() * t.element_size() for t in stored.values())
    assert per_row == teacher_cache.stored_bytes(k, bins, vocabulary, dtype)
    back, back_label = teacher_cache.decode(stored, slice(None), 1.0, vocabulary)
    assert torch.equal(back.ids, table.ids) and back.ids[0, 0] == 50_000 and torch.equal(back.counts, table.counts)
    assert torch.equal(back_label, label)
    tolerance = 0 if dtype == "float32" else 2.0 ** -11
    for name in ("logits", "log_sums"):
        original, decoded = getattr(table, name), getattr(back, name)
        assert torch.equal(original.isinf(), decoded.isinf())
        finite = original.isfinite()
        distance = (table.logits[:, :1] - original).abs()
        error = (decoded - original).abs()
        assert (error[finite] <= tolerance * distance[finite] + 1e-5).all(), name
    assert torch.allclose(back.floor, table.floor, rtol=0, atol=1e-5 + tolerance * 60)


def test_below_the_vocabulary_the_loss_is_smaller_and_training_still_moves(instructions, lm_tokenizer, tmp_path):
    """k = 8 of 350: over the top 8 and one tail bin, each divergence is at most the full one (T = 1)."""
    [live] = run_cohort(config(instructions, lm_tokenizer, tmp_path / "cache", [student(temperature=1.0, epochs=1)]),
                        progress=False)
    [cached] = run_cohort(config(instructions, lm_tokenizer, tmp_path / "cache", [student(temperature=1.0, epochs=1)],
                                 k=8), progress=False)
    assert 0 < cached.curve[0]["train_loss"] < live.curve[0]["train_loss"]


def _shards(folder):
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("shard-*.safetensors"))}


def test_a_killed_write_resumes_and_a_damaged_shard_alone_is_written_again(instructions, lm_tokenizer, tmp_path,
                                                                           monkeypatch, capsys):
    cohort = config(instructions, lm_tokenizer, tmp_path / "cache", [student(epochs=1)], k=16, shard_records=8)
    written = []
    real = teacher_cache._shard_bytes

    def dies_after_three(tensors):
        if len(written) == 3:
            raise KeyboardInterrupt("killed")
        written.append(1)
        return real(tensors)

    monkeypatch.setattr(teacher_cache, "_shard_bytes", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        run_cohort(cohort, progress=False)
    [folder] = (tmp_path / "cache" / "lm" / "teacher-outputs").iterdir()
    first = _shards(folder)
    assert len(first) == 3
    monkeypatch.setattr(teacher_cache, "_shard_bytes", real)
    run_cohort(cohort, progress=False)
    second = _shards(folder)
    assert len(second) == 8 and all(second[name] == first[name] for name in first)  # whole shards kept
    damaged = folder / "shard-00002.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-7] + b"garbage")
    capsys.readouterr()
    run_cohort(cohort, progress=False)
    third = _shards(folder)
    assert [name for name in third if third[name] != second[name]] == ["shard-00002.safetensors"]
    assert f"teacher cache: {damaged} is damaged or missing" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, what", [("data", "0" * 64, "training data"),
                                                ("tokenizer", "another-tokenizer", "tokenizer"),
                                                ("teacher", {"config": {"name": "another"}}, "teacher")])
def test_a_cache_made_for_another_teacher_tokenizer_or_data_is_one_line(instructions, lm_tokenizer, tmp_path, field,
                                                                        value, what):
    """A cache is found by a digest of what made it; a folder whose manifest says otherwise (copied, or
    edited) is refused, naming what differs."""
    cohort = config(instructions, lm_tokenizer, tmp_path / "cache", [student(epochs=1)], k=16)
    run_cohort(cohort, progress=False)
    [folder] = (tmp_path / "cache" / "lm" / "teacher-outputs").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["identity"][field] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=rf"^data.teacher_cache: the cache in .* was made for another {what} "
                                          rf"\({field}: "):
        run_cohort(cohort, progress=False)


@pytest.mark.parametrize("members, settings, message", [
    ([student()], {"k": 400}, r"^data.teacher_cache.k: 400 exceeds the vocabulary of 350 tokens; allowed: 1 to 350$"),
    ([student(objective="dkd")], {"k": 16}, r"^student.objective: 'dkd' \(with .*\) reads the teacher's full logits, "
                                             r"which data.teacher_cache does not hold; allowed with a cache: kd, "),
    ([student(responses={"source": "teacher"})], {"k": 16},
     r"^student.responses.source: teacher needs the live teacher, which generates the responses; data.teacher_cache "
     r"holds the teacher on the data's own responses only$"),
    ([student()], {"k": 0}, r"^data.teacher_cache.k: must be >= 1")])
def test_bad_input_is_one_line_before_any_work(instructions, lm_tokenizer, tmp_path, members, settings, message):
    with pytest.raises(ConfigError, match=message):
        cohort = config(instructions, lm_tokenizer, tmp_path / "cache", members, **settings)
        get_task("causal_lm").preflight([(cohort, cohort.members)], device="cpu")
    assert not (tmp_path / "cache" / "lm" / "teacher-outputs").exists()


def test_plan_says_the_students_read_the_cache(instructions, lm_tokenizer, tmp_path):
    cohort = config(instructions, lm_tokenizer, tmp_path / "cache", [student()], k=32, bins=8)
    [note] = get_task("causal_lm").plan_notes(cohort, cohort.members)
    assert note.startswith(f"teacher: read from its outputs cached in {tmp_path / 'cache'}/lm/teacher-outputs/ (k 32, "
                           "8 tail bins of 1, float16; 170 bytes a response token, held on the device whole)")


def test_a_cache_below_the_vocabulary_is_warned_once(instructions, lm_tokenizer, tmp_path, capsys):
    cohort = config(instructions, lm_tokenizer, tmp_path / "cache", [student()], k=32)
    get_task("causal_lm").preflight([(cohort, cohort.members)] * 2, device="cpu")
    lines = [line for line in capsys.readouterr().err.splitlines() if "teacher_cache" in line]
    assert lines == ["kdtemp: warning: data.teacher_cache: k 32 of the 350-token vocabulary: each divergence is taken "
                     "over the top 32 and the rest as one bin, a lower bound of the live teacher's that loosens as T "
                     "rises and spreads the teacher's mass into that bin (measured in docs/large-teacher.md); only k "
                     "equal to the vocabulary is exact at every T"]


KILL_AT_FOURTH_SHARD = """
import os, signal, sys
from kdtemp.tasks.lm import teacher_cache
real, written = teacher_cache._shard_bytes, []
def dies(tensors):
    if len(written) == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # a real kill, while the teacher writes its fourth shard
    written.append(1)
    return real(tensors)
teacher_cache._shard_bytes = dies
from kdtemp.cli import main
main(["study", "run", sys.argv[1], "--quiet"])
"""


@pytest.mark.slow
def test_a_study_killed_while_the_cache_is_written_resumes_with_the_whole_shards(instructions, lm_tokenizer, tmp_path):
    import subprocess
    import sys

    from helpers.trust import write_yaml
    from kdtemp.cli import main

    def study(name):
        data = {**lm_data(instructions, lm_tokenizer, tmp_path / f"cache-{name}"), "teacher_cache": {"k": 16, "shard_records": 8}}
        return write_yaml(tmp_path / f"{name}.yaml", {
            "name": name, "output": str(tmp_path / name), "executor": {"kind": "inline", "threads": 1},
            "base": {"task": "causal_lm", "data": data, "teacher": TEACHER, "batch_size": 8,
                     "student": student(epochs=1)}, "grid": {"student.temperature": [1, 2]}})

    killed = study("killed")
    done = subprocess.run([sys.executable, "-c", KILL_AT_FOURTH_SHARD, killed], capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr[-2000:]
    [folder] = (tmp_path / "cache-killed" / "lm" / "teacher-outputs").iterdir()
    before = _shards(folder)
    assert len(before) == 3 and not list((tmp_path / "killed" / "runs").glob("*/metrics.json"))
    assert main(["study", "run", killed, "--quiet"]) == 0
    after = _shards(folder)
    assert len(after) == 8 and all(after[name] == before[name] for name in before)  # nothing whole rewritten
    assert main(["study", "run", study("whole"), "--quiet"]) == 0  # never interrupted
    results = {}
    for name in ("killed", "whole"):
        results[name] = sorted((json.loads(p.read_text())["label"], [r["train_loss"] for r in json.loads(p.read_text())["curve"]])
                               for p in (tmp_path / name / "runs").glob("*/metrics.json"))
    assert results["killed"] == results["whole"]
