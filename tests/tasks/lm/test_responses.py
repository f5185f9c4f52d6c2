"""Where a member's training responses come from (``student.responses``): the dataset's, the teacher's
(sequence-level KD: generated once, cached, reused by a second study, resumed after a kill without
regenerating what was written) or the member's own (on-policy, GKD's ``lmbda``): an on-policy member
trains in a cohort exactly as alone, ``lmbda: 0`` exactly as the dataset's responses, and the
sampling temperature of responses changes nothing of the loss temperature's effect."""

import json

import pytest
import torch

from kdtemp.config import ConfigError, from_dict
from kdtemp.engine import CohortConfig, run_cohort
from kdtemp.engine.config import member_config
from kdtemp.engine.runtime import Runtime
from kdtemp.tasks import get_task
from kdtemp.tasks.lm import responses as responses_module
from kdtemp.tasks.lm.config import LMDataConfig, TeacherCacheConfig
from kdtemp.tasks.lm.responses import teacher_responses

from helpers.engine import assert_cohort_equals_each_alone
from helpers.lm import lm_data, tiny_gpt2

TEACHER = {"name": "tiny-teacher", "init": "random", "config": tiny_gpt2(width=48)}
SAMPLE = {"protocol": "sample", "sampling_temperature": 1.0, "max_new_tokens": 5, "batch_size": 8}


def shared(instructions, tokenizer, cache):
    return {"task": "causal_lm", "data": lm_data(instructions, tokenizer, cache, eval_samples=2), "batch_size": 8,
            "device": "cpu", "teacher": TEACHER}


def student(**fields):
    return {"model": {"name": "tiny-student", "init": "random", "config": tiny_gpt2(layers=1)}, "epochs": 1,
            "optimizer": {"name": "adamw", "lr": 3e-3}, **fields}


def curves(config, members):
    return [[(row["train_loss"], row.get("rouge_l")) for row in r.curve]
            for r in run_cohort(from_dict(CohortConfig, {**config, "members": members}), progress=False)]


@pytest.mark.parametrize("responses, message", [
    ({"source": "teachers"}, r"^student.responses.source: 'teachers' is not allowed; allowed: 'dataset' \| 'teacher' \| 'student'$"),
    ({"source": "student", "lmbda": 1.5}, r"^student.responses.lmbda: must be in \[0, 1\] \(the fraction of batches on-policy\); got 1.5$"),
    ({"source": "teacher", "lmbda": 0.5}, r"^student.responses.lmbda: applies to on-policy responses \(source: student\) only$"),
    ({"source": "student", "generation": {"protocol": "minillm"}}, r"^student.responses.generation.protocol: minillm is an evaluation protocol"),
])
def test_bad_response_settings_get_one_line(responses, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(member_config("causal_lm"), {"responses": responses}, "student")


@pytest.mark.parametrize("source", ["teacher", "student"])
def test_a_response_source_that_needs_a_teacher_without_one_is_refused(instructions, lm_tokenizer, tmp_path, source):
    config = from_dict(CohortConfig, {**shared(instructions, lm_tokenizer, tmp_path / "cache"), "teacher": None,
                                      "members": [student(objective=None, responses={"source": source})]})
    with pytest.raises(ConfigError, match=rf"^student.responses.source: {source} needs the cohort's teacher"):
        get_task("causal_lm").preflight([(config, config.members)], device="cpu")


def test_lmbda_zero_trains_exactly_as_the_dataset_responses(instructions, lm_tokenizer, tmp_path):
    config = shared(instructions, lm_tokenizer, tmp_path / "cache")
    plain = curves(config, [student(temperature=2.0)])
    off = curves(config, [student(temperature=2.0, responses={"source": "student", "lmbda": 0})])
    assert off == plain


def test_an_on_policy_member_trains_in_a_cohort_as_alone(instructions, lm_tokenizer, tmp_path):
    members = [student(temperature=2.0, responses={"source": "student", "lmbda": 1, "generation": SAMPLE}),
               student(temperature=1.0, objective="jsd", objective_params={"beta": 0.5},
                       responses={"source": "student", "lmbda": 0.5, "generation": SAMPLE}, seed=1),
               student(temperature=2.0)]
    assert_cohort_equals_each_alone(shared(instructions, lm_tokenizer, tmp_path / "cache"), members, tmp_path)


def test_on_policy_batches_are_the_members_own_samples_scored_by_the_teacher(instructions, lm_tokenizer, tmp_path):
    config = from_dict(CohortConfig, {**shared(instructions, lm_tokenizer, tmp_path / "cache"),
                                      "members": [student(responses={"source": "student", "generation": SAMPLE})]})
    runtime, task = Runtime.create("cpu", "fp32"), get_task("causal_lm")
    data = task.open(config, runtime)
    member = config.members[0]
    model = task.create_model(member.model, data, runtime, "student")
    teacher = task.create_model(config.teacher, data, runtime, "teacher")
    teacher.module.eval()  # as the engine holds its teacher
    batch = next(data.stream.epoch(1))
    source = task.batch_source(member)
    own, teacher_logits = task.member_batch(source, batch, 1, 0, member, model, teacher, data, runtime)
    prompts = [data.train_prompts()[i] for i in batch.indices.tolist()]
    width = own.inputs["input_ids"].shape[1]
    for row, prompt in enumerate(prompts):  # each record: the stream's prompt, then the member's sample
        assert own.inputs["input_ids"][row, :len(prompt)].tolist() == prompt
    assert own.inputs["input_ids"].shape[0] == len(prompts) and width <= data.config.max_length
    with torch.no_grad():
        assert torch.equal(teacher_logits, teacher(own))  # the teacher scored these very tokens


def test_the_sampling_temperature_of_responses_changes_nothing_of_the_loss_temperature(instructions, lm_tokenizer,
                                                                                       tmp_path):
    """The loss at T = 2 of one batch is the same function of its tokens whatever temperature sampled
    them; and sampling at 0.7 draws the same tokens whatever the member's loss temperature."""
    config = from_dict(CohortConfig, {**shared(instructions, lm_tokenizer, tmp_path / "cache"), "members": [
        student(temperature=t, responses={"source": "student", "generation": {**SAMPLE, "sampling_temperature": 0.7}})
        for t in (1.0, 4.0)]})
    runtime, task = Runtime.create("cpu", "fp32"), get_task("causal_lm")
    data = task.open(config, runtime)
    batch = next(data.stream.epoch(1))
    drawn = []
    for member in config.members:  # same seed and model, different loss T: the same samples
        torch.manual_seed(0)
        model = task.create_model(member.model, data, runtime, "student")
        torch.manual_seed(5)
        own, _ = task.member_batch(task.batch_source(member), batch, 1, 0, member, model, None, data, runtime)
        drawn.append(own.inputs["input_ids"])
    assert torch.equal(drawn[0], drawn[1])
    assert config.members[0].responses.generation.sampling_temperature == 0.7 != config.members[0].temperature


def test_teacher_responses_are_generated_once_reused_and_resumed(instructions, lm_tokenizer, tmp_path, monkeypatch):
    config = from_dict(CohortConfig, {**shared(instructions, lm_tokenizer, tmp_path / "cache"),
                                      "members": [student(responses={"source": "teacher", "generation": SAMPLE})]})
    runtime, task = Runtime.create("cpu", "fp32"), get_task("causal_lm")
    data = task.open(config, runtime)
    teacher = task.create_model(config.teacher, data, runtime, "teacher")
    generation = config.members[0].responses.generation.resolved()
    monkeypatch.setattr(responses_module, "SHARD", 16)
    calls = []
    original = type(teacher).generate_ids

    def counted(self, prompts, *args, **kwargs):
        calls.append(len(prompts))
        if len(calls) == 3 and kill:
            raise KeyboardInterrupt  # killed during the third shard
        return original(self, prompts, *args, **kwargs)

    monkeypatch.setattr(type(teacher), "generate_ids", counted)
    cache = tmp_path / "responses"
    kill = True
    with pytest.raises(KeyboardInterrupt):
        teacher_responses(teacher, data.train, generation, 0, data.config.max_length, runtime, cache)
    assert calls == [16, 16, 16]
    kill, calls[:] = False, []
    resumed = teacher_responses(teacher, data.train, generation, 0, data.config.max_length, runtime, cache)
    assert calls == [16, 16]  # shards 3 and 4 of 64 records; the two written are read back
    calls[:] = []
    again = teacher_responses(teacher, data.train, generation, 0, data.config.max_length, runtime, cache)
    assert calls == [] and torch.equal(again.ids, resumed.ids)  # a second study generates nothing
    kill = False
    whole = teacher_responses(teacher, data.train, generation, 0, data.config.max_length, runtime, tmp_path / "other")
    assert torch.equal(whole.ids, resumed.ids) and torch.equal(whole.offsets, resumed.offsets)  # as uninterrupted
    manifest = json.loads(next((cache / "lm" / "responses").glob("*/manifest.json")).read_text())
    assert len(manifest["shards"]) == 4 and manifest["generation"]["sampling_temperature"] == 1.0


def test_a_seqkd_cohort_trains_on_the_teachers_responses(instructions, lm_tokenizer, tmp_path):
    config = shared(instructions, lm_tokenizer, tmp_path / "cache")
    members = [student(temperature=2.0, responses={"source": "teacher", "generation": SAMPLE}),
               student(temperature=1.0, responses={"source": "teacher", "generation": SAMPLE}),
               student(temperature=2.0)]
    together = assert_cohort_equals_each_alone(config, members, tmp_path)
    assert together[0].run_id != together[2].run_id
    assert list((tmp_path / "cache" / "lm" / "responses").glob("*/manifest.json"))


def test_plan_counts_the_teacher_passes_members_of_their_own_batches_make(instructions, lm_tokenizer, tmp_path):
    task = get_task("causal_lm")
    make = lambda **responses: from_dict(member_config("causal_lm"), {"responses": responses}, "student")  # noqa: E731
    dataset, seqkd = make(), make(source="teacher")
    half, full = make(source="student", lmbda=0.5), make(source="student")
    data = from_dict(LMDataConfig, shared(instructions, lm_tokenizer, tmp_path / "cache")["data"], "data")
    assert task.teacher_passes([dataset, dataset], data) == 1  # one shared pass
    assert task.teacher_passes([seqkd, seqkd], data) == 1  # the teacher's responses: one pass, shared
    assert task.teacher_passes([dataset, seqkd], data) == 2
    assert task.teacher_passes([full, full], data) == 2  # each on-policy member scores its own samples
    assert task.teacher_passes([half, dataset], data) == 1.5
    data.teacher_cache = TeacherCacheConfig(k=16)
    assert task.teacher_passes([dataset, dataset], data) == 0  # read from the cache: the teacher does not run


def test_plan_says_when_the_teacher_s_responses_are_made_and_where_they_are_kept():
    from types import SimpleNamespace

    task = get_task("causal_lm")
    make = lambda **responses: from_dict(member_config("causal_lm"), {"responses": responses}, "student")  # noqa: E731
    shared = SimpleNamespace(data=SimpleNamespace(cache_dir="/cache", teacher_cache=None), teacher=None)
    notes = task.plan_notes(shared, [make(source="teacher"), make(source="teacher"), make(), make(source="student",
                                                                                                    lmbda=0.5)])
    assert len(notes) == 2  # one SeqKD setting (shared by its two members), one on-policy member; none for the data's
    assert "generates one response per training prompt" in notes[0] and "cached in /cache/lm/responses/" in notes[0]
    assert "resumes at its last shard" in notes[0] and "on 50% of its steps" in notes[1]
