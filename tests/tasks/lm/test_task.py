"""Causal language models on the engine (``kdtemp.tasks.lm.task``): only response positions reach a
loss, the KD term under DTS trains the student with progress over optimizer steps, chunked equals
unchunked, a cohort of students equals each trained alone bit for bit on the CPU, and a teacher
fine-tuned by ``prepare`` (SFT) learns the instructions."""

import pytest
import torch

from kdtemp.config import from_dict
from kdtemp.engine import CohortConfig, run_cohort
from kdtemp.engine.member import Member
from kdtemp.engine.runtime import Runtime
from kdtemp.engine.teacher import TeacherConfig, prepare_teacher
from kdtemp.objectives import token_kd_loss
from kdtemp.tasks import get_task

from helpers.engine import assert_cohort_equals_each_alone
from helpers.lm import lm_data, tiny_gpt2
from helpers.tolerance import float32_rel


def shared(instructions, tokenizer, cache, **fields):
    return {"task": "causal_lm", "data": lm_data(instructions, tokenizer, cache, eval_sets=["test", "selfinst"]),
            "batch_size": 8, "device": "cpu", **fields}


def student(**fields):
    return {"model": {"name": "tiny-student", "init": "random", "config": tiny_gpt2(layers=1)}, "epochs": 2,
            "optimizer": {"name": "adamw", "lr": 3e-3}, **fields}


RANDOM_TEACHER = {"name": "tiny-teacher", "init": "random", "config": tiny_gpt2(width=48)}


def _opened(instructions, lm_tokenizer, tmp_path, members, **fields):
    config = from_dict(CohortConfig, {**shared(instructions, lm_tokenizer, tmp_path / "cache", teacher=RANDOM_TEACHER,
                                               **fields), "members": members})
    runtime = Runtime.create("cpu", "fp32")
    task = get_task("causal_lm")
    return config, runtime, task, task.open(config, runtime)


def test_prompt_and_padding_positions_get_exactly_zero_gradient(instructions, lm_tokenizer, tmp_path):
    """The last hidden state of a prompt or padding position feeds no counted logit: its gradient is
    exactly zero; and the adapter's rows are the positions whose label (shifted) is a response token."""
    config, runtime, task, data = _opened(instructions, lm_tokenizer, tmp_path, [student()])
    model = task.create_model(config.members[0].model, data, runtime, "student")
    teacher = task.create_model(config.teacher, data, runtime, "teacher")
    model.module.eval(), teacher.module.eval()  # no dropout: the two forms below see the same network
    batch = next(iter(data.stream.epoch(1)))
    base = model.module.base_model
    captured = {}

    def keep(module, inputs, out):
        out.last_hidden_state.retain_grad()
        captured["h"] = out.last_hidden_state

    handle = base.register_forward_hook(keep)
    logits = model(batch)
    handle.remove()
    with torch.no_grad():
        teacher_logits = teacher(batch)
    loss = token_kd_loss(logits, teacher_logits, batch.targets, 2.0)
    loss.backward()
    grad = captured["h"].grad.reshape(-1, captured["h"].shape[-1])
    counted = torch.zeros(grad.shape[0], dtype=torch.bool)
    counted[batch.rows] = True
    assert torch.count_nonzero(grad[~counted]) == 0 and (grad[counted].abs().sum(-1) > 0).all()

    # the same loss from the full [B, W, V] logits with labels -100 outside the response (the spec's form)
    full = model.module(**batch.inputs).logits[..., : data.vocabulary]
    with torch.no_grad():
        full_teacher = teacher.module(**batch.inputs).logits[..., : data.vocabulary]
    ids = batch.inputs["input_ids"]
    labels = torch.full_like(ids, -100)
    labels.view(-1)[batch.rows] = ids.view(-1)[batch.rows + 1]  # aligned: position i predicts token i + 1
    assert torch.allclose(token_kd_loss(full, full_teacher, labels, 2.0), loss, rtol=1e-5)
    # padding positions (attention 0) are never counted
    assert not counted.reshape(ids.shape)[batch.inputs["attention_mask"] == 0].any()


def test_under_dts_the_kd_term_trains_the_student_and_progress_counts_steps(instructions, lm_tokenizer, tmp_path):
    member_config = student(epochs=2, temperature_policy="dts", dts={"initial": 3, "minimum": 1, "maximum": 3})
    config, runtime, task, data = _opened(instructions, lm_tokenizer, tmp_path, [member_config])
    teacher = task.create_model(config.teacher, data, runtime, "teacher")
    member = Member(config.members[0], "dts", task, data, runtime)
    assert member.weights.ce_weight == 0  # teacher matching only: any change comes from the KD term
    calls = []
    after_step = member.policy.after_step
    member.policy.after_step = lambda used, ce, step, total: (calls.append((step, total)), after_step(used, ce, step, total))
    before = [p.detach().clone() for p in member.student.parameters()]
    member.begin_epoch(1)
    for batch in data.stream.epoch(1):
        with torch.no_grad():
            teacher_logits = teacher(batch)
        member.train_step(batch, teacher_logits, 1)
    steps = data.stream.batches_per_epoch
    assert calls == [(step, 2 * steps) for step in range(1, steps + 1)]  # step / total_steps, not epochs
    changed = sum(not torch.equal(a, b) for a, b in zip(before, member.student.parameters()))
    assert changed == len(before)
    mean, trace = member.policy.end_epoch()
    assert len(trace) == steps and trace[0] == 3.0 and trace[-1] < 3.0


def test_chunked_and_unchunked_token_losses_train_the_same(instructions, lm_tokenizer, tmp_path):
    members = [student(temperature=2.0), student(objective="jsd", objective_params={"beta": 0.3})]
    curves = []
    for chunk in (5, 100_000):
        config = shared(instructions, lm_tokenizer, tmp_path / "cache", teacher=RANDOM_TEACHER)
        config["data"]["chunk_tokens"] = chunk
        results = run_cohort(from_dict(CohortConfig, {**config, "members": members}), progress=False)
        curves.append([[row["train_loss"] for row in r.curve] for r in results])
    for a, b in zip(*curves):
        assert a == pytest.approx(b, rel=1e-4)


def test_a_cohort_of_language_model_students_equals_each_trained_alone(instructions, lm_tokenizer, tmp_path):
    members = [student(temperature=1.0), student(temperature=4.0, seed=1), student(objective="reverse_kl", temperature=2.0),
               student(objective="skew_kl", temperature=2.0, seed=2),
               student(objective="kd", temperature_policy="dts", dts={"initial": 3, "minimum": 1, "maximum": 3}, seed=3),
               student(objective="ctkd", temperature_policy="ctkd", seed=4)]
    config = shared(instructions, lm_tokenizer, tmp_path / "cache", teacher=RANDOM_TEACHER)
    together = assert_cohort_equals_each_alone(config, members, tmp_path)
    assert {"rouge_l", "exact_match", "rouge_l_selfinst", "perplexity"} <= set(together[0].curve[-1])


def test_a_teacher_fine_tuned_by_prepare_learns_the_instructions(instructions, lm_tokenizer, tmp_path):
    config = from_dict(TeacherConfig, {**shared(instructions, lm_tokenizer, tmp_path / "cache"), "epochs": 30,
                                       "model": {"name": "tiny-teacher", "init": "random",
                                                 "config": tiny_gpt2(width=64, dropout=0.0)},
                                       "optimizer": {"name": "adamw", "lr": 1e-2}, "output": str(tmp_path / "teacher")})
    path, result = prepare_teacher(config, progress=False)
    assert result.primary_metric == "rouge_l"
    assert result.curve[-1]["rouge_l"] > result.curve[0]["rouge_l"] + 20  # it learned to answer
    assert result.curve[-1]["test_loss"] < result.curve[0]["test_loss"]
    # the prepared teacher distils: its checkpoint records its config and tokenizer
    cohort = shared(instructions, lm_tokenizer, tmp_path / "cache",
                    teacher={"name": "tiny-teacher", "init": "checkpoint", "weights": str(path)})
    cohort["data"].pop("tokenizer")  # the tokenizer comes from the teacher's checkpoint
    (run,) = run_cohort(from_dict(CohortConfig, {**cohort, "members": [student(epochs=1)]}), progress=False)
    assert run.status == "done" and run.teacher["rouge_l"] == pytest.approx(result.curve[-1]["rouge_l"])


def test_a_student_with_gradient_checkpointing_trains_as_without(instructions, lm_tokenizer, tmp_path):
    """Recomputing activations in the backward pass changes no number (float32, CPU)."""
    plain = student(temperature=2.0, epochs=1)
    checkpointed = {**plain, "model": {**plain["model"], "gradient_checkpointing": True}}
    config = shared(instructions, lm_tokenizer, tmp_path / "cache", teacher=RANDOM_TEACHER)
    (a,) = run_cohort(from_dict(CohortConfig, {**config, "members": [plain]}), progress=False)
    (b,) = run_cohort(from_dict(CohortConfig, {**config, "members": [checkpointed]}), progress=False)
    assert a.curve == b.curve and a.run_id != b.run_id


def test_the_validation_loss_projects_a_chunk_of_tokens_at_a_time(instructions, lm_tokenizer, tmp_path):
    config, runtime, task, data = _opened(instructions, lm_tokenizer, tmp_path, [student()])
    model = task.create_model(config.members[0].model, data, runtime, "student")
    model.module.eval()
    with torch.no_grad():  # the plain form: every batch's [N, V] logits at once
        sums = [(torch.nn.functional.cross_entropy(model(b), b.targets, reduction="sum").item(), b.tokens)
                for b in data.validation.batches(5)]
    plain = sum(s for s, _ in sums) / sum(n for _, n in sums)
    for chunk in (3, 100_000):
        loss, count = model.token_loss(data.validation, 5, runtime, chunk)
        # a log-sum-exp over the vocabulary per token, summed over every token in another order
        tokens = sum(n for _, n in sums)
        assert count == tokens and loss == pytest.approx(plain, rel=float32_rel(model.module.config.vocab_size + tokens))
