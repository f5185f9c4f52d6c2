"""study plan's cost: image-steps, FLOPs and GPU-hours for every stage and the study, data on disk or not."""

import re

from kdtemp.cli import main
from kdtemp.study.cost import training_cost
from kdtemp.tasks import get_task
from kdtemp.tasks.image.data import DataConfig
from kdtemp.tasks.image.models import ModelConfig, forward_flops


def test_the_paper_s_table1_plans_with_its_cost_before_pets_is_downloaded(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/pets here
    assert main(["study", "plan", "table1_pets"]) == 0
    out = capsys.readouterr().out
    stage = next(line for line in out.splitlines() if line.startswith("stage prepare:"))
    steps = int(re.search(r"~([\d,]+) image-steps", stage).group(1).replace(",", ""))
    assert steps > 0 and float(re.search(r"~([\d.,]+) GPU-hours", stage).group(1).replace(",", "")) > 0
    assert "about 3,680 train / 3,669 test images" in out
    total = next(line for line in out.splitlines() if line.startswith("total:"))
    assert float(re.search(r"~([\d.,]+) GPU-hours", total).group(1).replace(",", "")) > 0
    assert "H100" in total and "40%" in total  # the stated throughput


def test_flops_are_counted_on_the_meta_device_and_a_step_is_three_forward_passes():
    forward = forward_flops("resnet20", 10, 32)
    assert 80e6 < forward < 82e6  # resnet20: about 41 M multiply-adds at 32 px, 2 FLOPs each
    data = DataConfig(dataset="cifar10", root="nowhere", download=True, resolution=32, train_per_class=64,
                      test_per_class=10)
    cost = training_cost(get_task("image_classification"), data, None, 64, [(ModelConfig("resnet20"), 2)])
    assert cost.sample_steps == 640 * 2
    assert cost.flops == forward * (3 * 640 + 100) * 2
