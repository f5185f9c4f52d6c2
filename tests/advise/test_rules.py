"""The advisor's rules (``kdtemp.advise``) and ``kdtemp advise`` for the study's situations."""

import pytest

from kdtemp.advise import Setup, advise
from kdtemp.cli import main


def test_briefly_finetuned_pretrained_teacher_with_long_training_gets_large_t():
    advice = advise(Setup(teacher_origin="pretrained", finetune_epochs=20, optimizer="adamw", epochs=1024,
                          granularity="fine", class_overlap=True))
    assert (advice.low, advice.high, advice.suggested) == (5.0, 40.0, 40.0)  # the top of finding 4's range
    assert any("briefly fine-tuned" in r for r in advice.reasons) and any("long training" in r for r in advice.reasons)
    coarse = advise(Setup(teacher_origin="pretrained", finetune_epochs=40, optimizer="adamw", epochs=512, granularity="coarse"))
    assert (coarse.low, coarse.high, coarse.suggested) == (5.0, 40.0, 40.0)


@pytest.mark.parametrize("setup, phrase", [
    (Setup(teacher_origin="pretrained", finetune_epochs=400, optimizer="adamw", epochs=1024), "fine-tuned for 400 epochs"),
    (Setup(teacher_origin="scratch", optimizer="adamw", epochs=1024), "trained from scratch"),
    (Setup(teacher_origin="pretrained", finetune_epochs=20, teacher_tail_entropy=0.97, epochs=1024), "H(p_bar) is 0.970"),
])
def test_over_finetuned_or_scratch_teachers_get_small_t(setup, phrase):
    advice = advise(setup)
    assert advice.low == 1.0 and advice.high <= 4.0
    assert any(phrase in r for r in advice.reasons)
    if setup.teacher_origin == "scratch":
        assert advice.suggested == 1.0


def test_sgd_with_short_training_gets_small_t_and_batch_moves_the_cross_over():
    short = advise(Setup(optimizer="sgd", epochs=64))
    assert (short.low, short.high) == (1.0, 3.0) and any("SGD with short training" in r for r in short.reasons)
    long = advise(Setup(teacher_origin="pretrained", finetune_epochs=20, optimizer="sgd", epochs=512))
    assert long.low >= 5 and long.suggested >= 20
    big_batch = advise(Setup(teacher_origin="pretrained", finetune_epochs=20, optimizer="sgd", epochs=256, batch_size=256))
    assert big_batch.high <= 3.0  # 256 epochs at batch 256 is still before the cross-over


def test_fine_grained_target_without_pretraining_overlap_gets_small_t():
    advice = advise(Setup(teacher_origin="pretrained", finetune_epochs=20, optimizer="adamw", epochs=1024,
                          granularity="fine", class_overlap=False))
    assert advice.low == 1.0 and advice.high <= 3.0
    assert any("do not overlap" in r for r in advice.reasons)
    assert any("pointing the other way" in r for r in advice.reasons)


def test_advise_command_prints_range_and_reasons(capsys):
    assert main(["advise", "--teacher-origin", "scratch", "--optimizer", "sgd", "--epochs", "32"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recommended temperature: 1 (range 1 to 2)") and "trained from scratch" in out
