"""A plug-in objective for the executor tests: KD that, from its ``after``-th call on, waits until
the file named by ``$KDTEMP_TEST_FLAG`` exists (at most 10 s a call), so a test can hold a cohort in
the middle of training until the driver has seen what it should see by then."""

import os
import time
from pathlib import Path

from kdtemp.objectives import kd_loss

_calls = {"n": 0}


def loss(student, teacher, target, temperature, after: int = 6):
    _calls["n"] += 1
    flag = os.environ.get("KDTEMP_TEST_FLAG")
    if flag and _calls["n"] >= after:
        deadline = time.monotonic() + float(os.environ.get("KDTEMP_TEST_FLAG_WAIT", 10))
        while not Path(flag).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return kd_loss(student, teacher, temperature)
