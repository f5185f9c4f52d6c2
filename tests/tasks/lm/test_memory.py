"""The memory planner's estimate of a causal LM (measured on the meta device): what backward saves, against
a real forward pass on the CPU; a teacher read from its cache holds no weights, and the cache's rows count
as data, at the bytes a token it stores."""

import pytest
import torch

from kdtemp.config import from_dict
from kdtemp.engine import CohortConfig
from kdtemp.tasks import get_task
from kdtemp.tasks.lm.config import CausalLMConfig
from kdtemp.tasks.lm.memory import profile
from kdtemp.tasks.lm.preflight import LMFacts
from kdtemp.tasks.lm.teacher_cache import stored_bytes
from kdtemp.tasks.memory import saved_for_backward

from helpers.lm import lm_data, tiny_gpt2


@pytest.mark.parametrize("layers,width,batch,length", [(1, 32, 4, 24), (2, 48, 2, 40)])
def test_the_activation_estimate_is_within_a_fifth_of_what_backward_saves(layers, width, batch, length):
    from transformers import GPT2Config, GPT2LMHeadModel

    settings = tiny_gpt2(layers=layers, width=width, dropout=0.0)
    found = profile(from_dict(CausalLMConfig, {"name": "m", "init": "random", "config": settings}, "student.model"), length)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**settings)).train()
    ids = torch.randint(0, settings["vocab_size"], (batch, length))
    actual = saved_for_backward(model, input_ids=ids)
    assert abs(found.saved(batch) - actual) <= 0.2 * actual, (found.saved(batch), actual)
    assert found.parameter_bytes == sum(p.numel() * 4 for p in model.parameters())
    assert (found.vocabulary, found.layers, found.hidden) == (settings["vocab_size"], layers, width)


def _cohort(instructions, tokenizer, cache, **teacher_cache):
    data = lm_data(instructions, tokenizer, cache)
    if teacher_cache:
        data["teacher_cache"] = teacher_cache
    return from_dict(CohortConfig, {
        "task": "causal_lm", "data": data, "batch_size": 8, "device": "cpu",
        "teacher": {"name": "t", "init": "random", "config": tiny_gpt2(width=48)},
        "members": [{"model": {"name": "s", "init": "random", "config": tiny_gpt2(layers=1)},
                     "optimizer": {"name": "adamw", "lr": 1e-3}}]})


def test_a_cached_teacher_holds_nothing_and_its_cache_counts_as_data(instructions, lm_tokenizer, tmp_path):
    task = get_task("causal_lm")
    live = _cohort(instructions, lm_tokenizer, tmp_path)
    cached = _cohort(instructions, lm_tokenizer, tmp_path, k=32, bins=8)
    facts = LMFacts(live.data, 64, 12, {"test": 12, "selfinst": 6})
    for role in ("teacher", "evaluation"):
        assert task.memory(live, live.teacher, role, None, facts).total > 0
        assert task.memory(cached, cached.teacher, role, None, facts).parameters == 0
    member = cached.members[0]
    student = task.memory(cached, member.model, "student", member.optimizer, facts)
    assert student.optimizer == 2 * student.parameters and student.activations > 0  # AdamW: two moments
    vocabulary = 350  # the test tokenizer's
    extra = task.data_memory(cached, facts) - task.data_memory(live, facts)
    assert extra == 64 * live.data.max_length * stored_bytes(32, 8, vocabulary, "float16")
    assert task.data_memory(live, facts) == (64 + 18) * live.data.max_length * 8  # int64 ids of every record


def test_a_cached_teacher_counts_the_rows_a_step_reads(instructions, lm_tokenizer, tmp_path):
    from kdtemp.tasks.lm.teacher_cache import read_bytes

    cached = _cohort(instructions, lm_tokenizer, tmp_path, k=32, bins=8)
    facts = LMFacts(cached.data, 64, 12, {"test": 12, "selfinst": 6})
    rows = get_task("causal_lm").memory(cached, cached.teacher, "teacher", None, facts)
    assert rows.parameters == 0 and rows.activations == 8 * cached.data.max_length * read_bytes(32, 8)


def test_plan_s_cost_counts_no_live_teacher_pass_nor_its_evaluation_under_a_cache(instructions, lm_tokenizer, tmp_path):
    from kdtemp.study.cost import training_cost
    from kdtemp.tasks.hf import forward_flops

    task = get_task("causal_lm")
    live, cached = _cohort(instructions, lm_tokenizer, tmp_path), _cohort(instructions, lm_tokenizer, tmp_path, k=32)
    facts = LMFacts(live.data, 64, 12, {"test": 12, "selfinst": 6})

    def cost(cohort):
        member = cohort.members[0]
        return training_cost(task, cohort.data, facts, 8, [(member.model, 2)], cohort.teacher, [member])

    with_teacher, from_cache = cost(live), cost(cached)
    assert with_teacher.teacher_passes == 64 * 2 and from_cache.teacher_passes == 0  # record-passes: 64 a epoch, 2 epochs
    teacher = forward_flops(live.teacher, "AutoModelForCausalLM", live.data.max_length, None)
    assert with_teacher.flops - from_cache.flops == teacher * (128 + 12)  # its passes and its test evaluation
