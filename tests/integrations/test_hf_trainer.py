"""KDTrainer, the Hugging Face Trainer bridge: tiny random GPT-2 models, offline, on the CPU.

What is pinned: a run trains and logs its temperature; one step of batch 4 equals one step of two
micro-batches of 2 with different valid-token counts (and both equal the mean over all valid tokens
by hand); DTS moves T once per optimizer step from the token-weighted CE gap of the whole step, and
the KD term's gradient reaches the student; objectives without a token form are refused; so is a
DataCollatorForLanguageModeling that would replace the examples' labels (or mask for a masked LM);
prompt positions get exactly zero gradient; importing kdtemp.integrations does not import
transformers. The documented example itself runs in test_hf_trainer_docs.py.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

from kdtemp.integrations.hf_trainer import (  # noqa: E402
    KDTrainer,
    causal_targets,
    distillation_loss,
    token_objective,
)
from kdtemp.objectives import token_kd_loss  # noqa: E402
from kdtemp.temperature import DynamicTemperature  # noqa: E402

VOCAB, LENGTH = 64, 12
RESPONSE_TOKENS = (1, 2, 4, 8)
"""Valid next-token targets per example: any two of them hold a different count from the other two."""


def tiny_gpt2(seed: int, vocab: int = VOCAB) -> transformers.GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=vocab, n_positions=64,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return transformers.GPT2LMHeadModel(config)


def examples() -> list[dict[str, list[int]]]:
    """Four sequences of LENGTH tokens; the last RESPONSE_TOKENS[i] are the response, the rest the
    prompt (-100). The labels are the inputs (Hugging Face shifts them), so example i has exactly
    RESPONSE_TOKENS[i] valid targets."""
    generator = torch.Generator().manual_seed(0)
    rows = []
    for response in RESPONSE_TOKENS:
        ids = torch.randint(0, VOCAB, (LENGTH,), generator=generator).tolist()
        labels = [-100] * (LENGTH - response) + ids[LENGTH - response:]
        rows.append({"input_ids": ids, "attention_mask": [1] * LENGTH, "labels": labels})
    return rows


def batch_of(rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    return {key: torch.tensor([row[key] for row in rows]) for key in rows[0]}


def arguments(tmp_path, **overrides) -> transformers.TrainingArguments:
    settings = dict(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=3, report_to=[],
                    use_cpu=True, save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0)
    return transformers.TrainingArguments(**{**settings, **overrides})


def sgd_arguments(tmp_path, **overrides) -> transformers.TrainingArguments:
    """Plain SGD at a constant rate, no clipping: one step is ``-lr * gradient``."""
    settings = dict(optim="sgd", learning_rate=0.5, lr_scheduler_type="constant", max_grad_norm=0.0,
                    warmup_steps=0, weight_decay=0.0)
    return arguments(tmp_path, **{**settings, **overrides})


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def logged(trainer: KDTrainer, key: str) -> list[float]:
    return [entry[key] for entry in trainer.state.log_history if key in entry and "loss" in entry]


@pytest.mark.parametrize("objective, params", [("token_kd", {}), ("dkd", {})])
def test_training_runs_with_a_finite_loss_and_logs_its_temperature(tmp_path, objective, params):
    trainer = KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path), train_dataset=examples(),
                        teacher_model=tiny_gpt2(2), objective=objective, objective_params=params,
                        temperature=2.0, ce_weight=0.5)
    trainer.train()
    losses = logged(trainer, "loss")
    assert len(losses) == 3 and all(math.isfinite(v) and v > 0 for v in losses)
    assert logged(trainer, "kd_temperature") == [2.0, 2.0, 2.0]
    assert not trainer.teacher_model.training
    assert all(not p.requires_grad for p in trainer.teacher_model.parameters())
    metrics = trainer.evaluate(eval_dataset=examples())
    assert math.isfinite(metrics["eval_loss"]) and trainer.state.log_history[-1]["kd_temperature"] == 2.0


class PerMicroBatchMean(KDTrainer):
    """The naive bridge (a control): each micro-batch's own mean, divided by the accumulation steps."""

    loss_is_scaled_for_ga = False

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        return batches, None


def one_step_update(tmp_path, batch_size: int, accumulation: int,
                    trainer_class: type[KDTrainer] = KDTrainer) -> dict[str, torch.Tensor]:
    student = tiny_gpt2(1)
    before = parameters(student)
    args = sgd_arguments(tmp_path, per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
                         max_steps=1)
    trainer = trainer_class(model=student, args=args, train_dataset=examples(), teacher_model=tiny_gpt2(2),
                        temperature=2.0, ce_weight=0.3, kd_weight=0.7, chunk_tokens=5)
    trainer.train()
    return {name: p.detach() - before[name] for name, p in student.named_parameters()}


def reference_update(lr: float = 0.5) -> dict[str, torch.Tensor]:
    """One SGD step on the mean over all valid tokens of the four examples, by hand: the causal
    shift on the logits (logits[:, :-1] against labels[:, 1:]), token_kd_loss and cross_entropy."""
    student, teacher = tiny_gpt2(1), tiny_gpt2(2)
    batch = batch_of(examples())
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    s = student(**inputs).logits[:, :-1]
    with torch.no_grad():
        t = teacher(**inputs).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    loss = 0.7 * token_kd_loss(s, t, labels, 2.0) + \
        0.3 * torch.nn.functional.cross_entropy(s.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
    loss.backward()
    return {name: -lr * p.grad for name, p in student.named_parameters()}


def test_gradient_accumulation_gives_the_update_of_the_whole_batch(tmp_path):
    whole = one_step_update(tmp_path / "whole", batch_size=4, accumulation=1)
    accumulated = one_step_update(tmp_path / "accumulated", batch_size=2, accumulation=2)
    expected = reference_update()
    assert any(delta.abs().max() > 1e-4 for delta in whole.values())  # a real step
    for name in whole:
        torch.testing.assert_close(accumulated[name], whole[name], atol=1e-6, rtol=0)
        torch.testing.assert_close(whole[name], expected[name], atol=1e-6, rtol=0)
    naive = one_step_update(tmp_path / "naive", batch_size=2, accumulation=2, trainer_class=PerMicroBatchMean)
    assert max((naive[name] - whole[name]).abs().max() for name in whole) > 1e-4  # the test tells them apart


def test_dts_moves_the_temperature_per_step_from_the_gap_of_the_whole_step(tmp_path):
    student, teacher = tiny_gpt2(1), tiny_gpt2(2)
    with torch.no_grad():  # a confident random student: a CE gap above 1, where DTS's factor depends on it
        student.transformer.wte.weight.mul_(40.0)
    before = parameters(student)
    batch = batch_of(examples())
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        targets = batch["labels"][:, 1:].reshape(-1)
        ce = [torch.nn.functional.cross_entropy(m(**inputs).logits[:, :-1].reshape(-1, VOCAB), targets,
                                                ignore_index=-100).item() for m in (student, teacher)]
    assert ce[0] - ce[1] > 1.0
    dts = {"initial": 4.0, "minimum": 1.0, "maximum": 8.0, "momentum": 0.5}
    args = sgd_arguments(tmp_path, learning_rate=1e-3, gradient_accumulation_steps=2)
    trainer = KDTrainer(model=student, args=args, train_dataset=examples(), teacher_model=teacher,
                        temperature_policy="dts", dts=dts, kd_weight=1.0, ce_weight=0.0)
    trainer.train()
    used = logged(trainer, "kd_temperature")
    expected = DynamicTemperature(**dts).update(ce[0], ce[1], 1, 3)  # after step 1 of 3, all 4 examples
    assert used[0] == 4.0
    assert used[1] == pytest.approx(expected, abs=1e-6)
    assert used[2] != pytest.approx(used[1], abs=1e-6)
    unchanged = [name for name, p in student.named_parameters() if torch.equal(p.detach(), before[name])]
    assert unchanged == []  # with ce_weight 0 the KD term alone moved every parameter


@pytest.mark.parametrize("objective", ["dist", "mlkd", "ls_global", "shuffled_tail", "energy_kd"])
def test_objectives_without_a_token_form_are_refused(tmp_path, objective):
    with pytest.raises(ValueError, match="does not apply to the tokens"):
        KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path), teacher_model=tiny_gpt2(2), objective=objective)


@pytest.mark.parametrize("settings, message", [
    ({"objective": "ctkd"}, "temperature policy"),
    ({"objective": "kd", "divergence": "reverse_kl"}, "divergence applies"),
    ({"divergence": "cross"}, "divergence: unknown"),
    ({"objective_params": {"beta": 2.0}}, "beta"),
    ({"temperature_policy": "ctkd"}, "temperature_policy"),
    ({"temperature_policy": "dts", "dts": {"initial": 9.0, "minimum": 1.0, "maximum": 8.0}}, "initial"),
    ({"kd_weight": 0.0, "ce_weight": 0.0}, "nothing to train"),
])
def test_bad_settings_are_refused(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path), teacher_model=tiny_gpt2(2), **settings)


def gpt2_tokenizer(folder):
    """A byte-level BPE tokenizer trained in the test, with GPT-2's end-of-text token and, like GPT-2's,
    no pad token."""
    from helpers.lm import train_tokenizer

    return transformers.AutoTokenizer.from_pretrained(str(train_tokenizer(folder)))


def test_a_language_modeling_collator_that_would_replace_the_labels_is_refused(tmp_path):
    """DataCollatorForLanguageModeling makes labels from the input ids: on examples with their own
    labels (-100 on the prompt) the prompt would silently become targets; with mlm=True it masks for
    a masked LM. Both are refused; on plain text without labels it is the collator to use."""
    tokenizer = gpt2_tokenizer(tmp_path / "tokenizer")
    tokenizer.pad_token = tokenizer.eos_token
    language_modeling = transformers.DataCollatorForLanguageModeling(tokenizer, mlm=False)
    plain = [{key: row[key] for key in ("input_ids", "attention_mask")} for row in examples()]
    with pytest.raises(ValueError, match=r"replaces the examples' `labels`.*DataCollatorForSeq2Seq"):
        KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path), train_dataset=examples(), teacher_model=tiny_gpt2(2),
                  data_collator=language_modeling)
    with pytest.raises(ValueError, match=r"replaces the examples' `labels`"):
        KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path), train_dataset=plain, teacher_model=tiny_gpt2(2),
                  eval_dataset={"held_out": examples()}, data_collator=language_modeling)
    tokenizer.mask_token = tokenizer.eos_token  # a tokenizer with a mask token: mlm=True would run
    with pytest.raises(ValueError, match="mlm=True"):
        KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path), train_dataset=plain, teacher_model=tiny_gpt2(2),
                  data_collator=transformers.DataCollatorForLanguageModeling(tokenizer, mlm=True))
    trainer = KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path, max_steps=1), train_dataset=plain,
                        teacher_model=tiny_gpt2(2), data_collator=language_modeling)
    trainer.train()
    assert math.isfinite(logged(trainer, "loss")[0])


def test_vocabularies_must_match_unless_the_teacher_is_only_larger(tmp_path):
    with pytest.raises(ValueError, match="vocabularies differ"):
        KDTrainer(model=tiny_gpt2(1, vocab=72), args=arguments(tmp_path), teacher_model=tiny_gpt2(2))
    with pytest.warns(UserWarning, match="trimmed"):
        trainer = KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path), teacher_model=tiny_gpt2(2, vocab=72))
    with pytest.warns(UserWarning, match="trimmed"):
        loss = trainer.compute_loss(trainer.model, batch_of(examples()))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("objective, ce_weight", [("token_kd", 0.0), ("token_kd", 0.5), ("dkd", 0.5)])
def test_prompt_positions_get_exactly_zero_gradient(tmp_path, objective, ce_weight):
    trainer = KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path), teacher_model=tiny_gpt2(2),
                        objective=objective, temperature=3.0, ce_weight=ce_weight, chunk_tokens=3)
    captured = []

    def keep(module, args, out):
        out.retain_grad()
        captured.append(out)

    trainer.model.lm_head.register_forward_hook(keep)
    batch = batch_of(examples())
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grad = captured[0].grad  # [B, L, V]
    counts = causal_targets(batch["labels"]) != -100
    assert counts.sum().item() == sum(RESPONSE_TOKENS)
    assert torch.all(grad[~counts] == 0)  # prompt positions and the last position: exactly 0
    assert torch.all(grad[counts].abs().sum(-1) > 0)


def test_the_loss_helper_is_the_mean_over_shifted_valid_tokens():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, 1], [-100, 2, 6, -100, -100]])
    kd = token_objective("token_kd", {}, "jsd")
    value = distillation_loss(s, t, labels, kd, 2.0, ce_weight=0.25)
    by_hand = token_kd_loss(s[:, :-1], t[:, :-1], labels[:, 1:], 2.0, "jsd") + \
        0.25 * torch.nn.functional.cross_entropy(s[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(value, by_hand)
    summed = distillation_loss(s, t, labels, kd, 2.0, ce_weight=0.25, num_items=10)
    torch.testing.assert_close(summed, by_hand * 5 / 10)  # 5 valid targets, divided by 10


def test_importing_the_package_does_not_import_transformers():
    code = "import sys, kdtemp.integrations; assert 'transformers' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


class _Halving:
    """A plug-in policy (registered only by the test below): T starts at 4 and halves after each step."""

    name = "halving"

    def __init__(self) -> None:
        self.value, self.used = 4.0, []

    def current(self, batch=None) -> float:
        return self.value

    def parameters(self):
        return []

    def begin_epoch(self, epoch: int) -> None:
        pass

    def after_step(self, used, cross_entropies, step: int, total: int) -> None:
        self.used.append(used)
        self.value = max(self.value / 2, 1.0)

    def end_epoch(self):
        used, self.used = self.used or [self.value], []
        return sum(used) / len(used), []

    def epoch_summary(self):
        return None

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state) -> None:
        self.value = state["value"]


def test_the_bridge_drives_any_registered_policy_that_declares_it_can(tmp_path):
    from kdtemp.integrations.hf_trainer import policies
    from kdtemp.temperature import POLICIES, PolicySpec, register_policy

    assert policies() == ("fixed", "dts")  # the built-in ones; instance DTS, CTKD and AKD need the engine
    register_policy(PolicySpec("halving", "halving T", lambda inputs: _Halving()))
    try:
        trainer = KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path, max_steps=3, logging_steps=1),
                            train_dataset=examples(), teacher_model=tiny_gpt2(2), temperature_policy="halving")
        trainer.train()
        assert logged(trainer, "kd_temperature") == [4.0, 2.0, 1.0]
    finally:
        del POLICIES["halving"]
    with pytest.raises(ValueError, match=r"cannot drive 'dts_instance' \(keeps one temperature per training sample"):
        KDTrainer(model=tiny_gpt2(1), args=arguments(tmp_path), teacher_model=tiny_gpt2(2),
                  temperature_policy="dts_instance")
