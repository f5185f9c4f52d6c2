"""bench/lm.py runs end to end on CPU with tiny sizes and reports every figure it promises."""

import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="bench/lm.py needs the lm extra: pip install 'kdtemp[lm]'")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "lm.py"


@pytest.mark.slow
def test_it_reports_memory_and_the_cohort_ratio(capsys, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_lm", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        figures = module.main(["--vocab", "2000", "--tokens", "256", "--chunk", "32", "--records", "32", "--epochs", "1",
                               "--batch-size", "8", "--members", "2", "--threads", "1", "--repeats", "1"])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    for field in ("(a) token loss", "plain full-vocabulary", "chunked (32 rows)", "besides the logits' gradient",
                  "(b) cohort of 2 students", "cohort / solo", "teacher forward", "curves equal: True"):
        assert field in printed, field
    assert figures["memory"]["plain"]["loss"] == pytest.approx(figures["memory"]["chunked"]["loss"], rel=1e-5)
    assert figures["cohort"]["equal"] and figures["cohort"]["ratio"] > 0
