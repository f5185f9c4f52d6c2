"""KDTrainer across processes: two gloo processes under DDP (``torch.distributed.run``) equal one process
with the same global batch (4 examples a step: 2 a process, or 2 micro-batches of 2 accumulated): the
student's parameters after 4 SGD steps within 1e-6, and DTS's temperature the same on both ranks and as
one process's, step by step (it moves from step-wide sums reduced over the processes). FSDP needs GPUs:
Accelerate ignores ``fsdp`` on a CPU and would train unsharded, which KDTrainer refuses in one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers", reason="KDTrainer needs the lm extra: pip install 'kdtemp[lm]'")
pytest.importorskip("accelerate", reason="KDTrainer needs the lm extra: pip install 'kdtemp[lm]'")

SCRIPT = Path(__file__).with_name("kdtrainer_processes.py")
ROOT = Path(__file__).resolve().parents[2]


def launch(mode: str, out: Path, processes: int, fails: bool = False) -> list[dict] | str:
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), mode, str(out)]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   str(SCRIPT), mode, str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if fails:
        assert done.returncode != 0
        return done.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(processes)]


@pytest.mark.slow
def test_two_ddp_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    [single] = launch("single", tmp_path / "single", 1)
    ranks = launch("ddp", tmp_path / "ddp", 2)
    assert [r["wrapped"] for r in ranks] == ["DistributedDataParallel"] * 2 and single["processes"] == 1
    assert len(single["temperatures"]) == 4 and single["temperatures"][0] == 4.0  # DTS starts at initial
    assert len(set(single["temperatures"])) == 4  # and moved T after every step
    for rank in ranks:
        assert rank["temperatures"] == pytest.approx(single["temperatures"], rel=1e-6)
        assert rank["logged"] == pytest.approx(single["logged"], rel=1e-6)
        assert rank["teacher_frozen"]
    assert ranks[0]["temperatures"] == ranks[1]["temperatures"]  # the ranks agree exactly
    whole = ranks[0]["parameters"]
    assert set(whole) == set(single["parameters"])
    worst = max(abs(a - b) for name in whole for a, b in zip(whole[name], single["parameters"][name]))
    assert worst < 1e-6
    moved = max(abs(a) for a in single["parameters"]["lm_head.weight"][:50])
    assert moved > 0


@pytest.mark.slow
def test_fsdp_that_accelerate_would_ignore_is_refused(tmp_path):
    """Two CPU processes with ``fsdp``: Accelerate would wrap the student in DDP; KDTrainer says so instead."""
    stderr = launch("fsdp", tmp_path / "fsdp", 2, fails=True)
    assert ("ValueError: fsdp: True asks for sharding, but Accelerate enables FSDP only on GPUs "
            "(DistributedType.MULTI_CPU here) and would train unsharded instead; leave fsdp unset here, or launch "
            "on GPUs") in stderr
