"""``kdtemp diagnose`` against a direct computation, and ``kdtemp advise`` for the study's situations."""

import json
import math

import pytest
import torch

from kdtemp.advise import Setup, advise
from kdtemp.cli import main
from kdtemp.tasks.image.data import AugmentConfig, DataConfig, eval_images, normalize
from kdtemp.engine import OptimizerConfig, TeacherConfig, prepare_teacher
from kdtemp.tasks.image.models import ModelConfig, create_model

DATA = DataConfig(dataset="digits", resolution=8, train_per_class=16, test_per_class=10)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    config = TeacherConfig(data=DATA, augment=AugmentConfig(randaugment_ops=0, mix=False), model=ModelConfig("resnet20"),
                           optimizer=OptimizerConfig(lr=5e-3), epochs=2, batch_size=32, device="cpu", output=str(folder))
    path, _ = prepare_teacher(config, progress=False)
    return path


def test_diagnose_equals_a_direct_computation(teacher, tmp_path, capsys):
    out = tmp_path / "d.json"
    assert main(["diagnose", str(teacher), "--temperatures", "1", "4", "20", "--top-k", "5", "--json", str(out), "--device", "cpu"]) == 0
    assert "relative H(p)" in capsys.readouterr().out
    reported = json.loads(out.read_text())

    # the same teacher outputs, computed here without kdtemp's diagnostics code
    model = create_model(ModelConfig("resnet20", init="checkpoint", weights=str(teacher)), 10).eval()
    split = DATA.load("train")
    with torch.no_grad():
        logits = model(normalize(eval_images(split.images, 8, False))).double()
    p = torch.softmax(logits, dim=1)
    entropy = (-(p * p.log()).sum(1) / math.log(10)).mean().item()
    top = p.argmax(1)
    tail = torch.stack([torch.cat([row[:k], row[k + 1:]]) for row, k in zip(p, top)])
    tail = tail / tail.sum(1, keepdim=True)
    tail_entropy = (-(tail * tail.log()).sum(1) / math.log(9)).mean().item()
    assert reported["relative_entropy"] == pytest.approx(entropy, abs=1e-6)
    assert reported["relative_entropy_without_top"] == pytest.approx(tail_entropy, abs=1e-6)
    assert reported["top1"] == pytest.approx((top == split.labels).double().mean().item() * 100, abs=1e-4)
    for t in (1, 4, 20):
        profile = torch.softmax(logits / t, dim=1).sort(dim=1, descending=True).values.mean(0)[:5]
        assert reported["profiles"][f"{t}"] == pytest.approx(profile.tolist(), abs=1e-6)
    assert reported["origin"]["kind"] == "scratch"


def test_diagnose_needs_a_model_for_foreign_checkpoints(tmp_path, capsys):
    torch.save({"state_dict": create_model(ModelConfig("resnet20"), 10).state_dict()}, tmp_path / "w.th")
    assert main(["diagnose", str(tmp_path / "w.th")]) == 2
    assert "give --model NAME" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path / "w.th"), "--model", "resnet20", "data.resolution=8", "data.train_per_class=4",
                 "--temperatures", "1", "--device", "cpu"]) == 0


def test_briefly_finetuned_pretrained_teacher_with_long_training_gets_large_t():
    advice = advise(Setup(teacher_origin="pretrained", finetune_epochs=20, optimizer="adamw", epochs=1024,
                          granularity="fine", class_overlap=True))
    assert (advice.low, advice.high, advice.suggested) == (5.0, 40.0, 20.0)  # calibrated on the paper's Table 2
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
