"""``kdtemp diagnose`` (``kdtemp.engine.diagnose``) against a direct computation."""

import json
import math

import pytest
import torch

from kdtemp.cli import main
from kdtemp.engine import OptimizerConfig, TeacherConfig, prepare_teacher
from kdtemp.tasks.image.data import AugmentConfig, DataConfig, eval_images, normalize
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
