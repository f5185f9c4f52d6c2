"""bench/gpu.py runs end to end on CPU with tiny sizes and reports every figure it promises."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"


@pytest.fixture
def gpu_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)  # the runs below pass --threads 1


TINY = ["--teacher", "resnet20", "--student", "resnet20", "--resolution", "16", "--batch-size", "8", "--steps", "2",
        "--warmup", "1", "--members", "2", "--device", "cpu", "--images", "16", "--num-classes", "4", "--threads", "1"]


def test_it_reports_throughput_ratio_time_split_and_flops(gpu_bench, capsys, tmp_path):
    result = gpu_bench.run(TINY + ["--json", str(tmp_path / "figures.json")])
    printed = capsys.readouterr().out
    for field in ("images/s per member", "cohort of 2", "solo run", "wall-clock ratio", "time split",
                  "data", "teacher forward", "student forward+backward", "optimizer", "MFU", "GFLOP"):
        assert field in printed, field
    assert "MFU n/a" in printed  # on CPU without --peak-tflops
    for arm in ("solo", "cohort"):
        figures = result[arm]
        assert figures["images_per_second_per_member"] > 0 and figures["wall_seconds"] > 0
        assert set(figures["split_ms_per_step"]) == set(gpu_bench.PHASES)
        assert all(ms > 0 for ms in figures["split_ms_per_step"].values())
        # on CPU the phases are the wall clock: they account for (nearly) the whole step
        assert sum(figures["split_ms_per_step"].values()) <= figures["ms_per_step"] * 1.05
    assert result["cohort"]["members"] == 2 and result["cohort_to_solo_ratio"] > 0
    assert result["flops"]["teacher_forward"] > 0
    assert result["flops"]["student_forward_backward"] > 2 * result["flops"]["teacher_forward"]  # same net: ~3x
    assert json.loads((tmp_path / "figures.json").read_text())["cohort"]["members"] == 2


def test_a_given_peak_gives_an_mfu_and_the_crop_recipe_runs(gpu_bench, capsys):
    result = gpu_bench.run(TINY + ["--members", "1", "--crop", "--stored-size", "20", "--peak-tflops", "1"])
    assert "MFU n/a" not in capsys.readouterr().out
    assert 0 < result["solo"]["mfu"] < 1
    assert result["stored_size"] == [20, 20]
