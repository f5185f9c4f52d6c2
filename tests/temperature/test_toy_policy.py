"""A temperature policy registered inside this file, touching nothing in kdtemp: T falls linearly from
8 to 1 over the run's epochs. A cohort and a study train with it by name, its label names it, and the
report draws its runs."""

from __future__ import annotations

from typing import Any

import pytest
from torch import nn

from kdtemp.cli import main
from kdtemp.engine import run_cohort
from kdtemp.temperature import POLICIES, PolicySpec, register_policy

from helpers.engine import cohort, member
from helpers.trust import study, write_yaml

NAME = "linear_decay"


class LinearDecay:
    """T starts at 8; after each step of epoch ``e`` of ``E`` it is ``8 - 7 e / (E - 1)`` (1 from the
    last epoch on)."""

    name = NAME

    def __init__(self) -> None:
        self.value = 8.0

    def current(self, batch: Any = None) -> float:
        return self.value

    def parameters(self) -> list[nn.Parameter]:
        return []

    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def after_step(self, used, cross_entropies, epoch: int, total_epochs: int) -> None:
        self.value = 8.0 - 7.0 * epoch / max(total_epochs - 1, 1) if epoch < total_epochs else 1.0

    def end_epoch(self) -> tuple[float, list[float]]:
        return self.value, []

    def epoch_summary(self) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = state["value"]


@pytest.fixture
def linear_decay():
    register_policy(PolicySpec(NAME, "linear decay", lambda inputs: LinearDecay(), label=lambda m: "T8to1"))
    yield
    del POLICIES[NAME]


def test_a_policy_registered_in_a_test_trains_a_cohort_by_name(linear_decay, tmp_path):
    (result,) = run_cohort(cohort([member(epochs=3, temperature_policy=NAME)]), output=tmp_path, progress=False)
    assert result.status == "done" and result.label == "kd-T8to1-adamw"
    assert [row["temperature"] for row in result.curve] == [4.5, 1.0, 1.0]


def test_an_unregistered_policy_is_refused_with_the_registered_ones():
    from kdtemp.config import ConfigError, from_dict
    from kdtemp.engine.config import MemberConfig

    with pytest.raises(ConfigError, match=r"^student.temperature_policy: 'linear_decay' is not allowed; allowed: 'fixed' \| "
                                          r"'dts' \| 'dts_instance' \| 'ctkd' \| 'akd'$"):
        from_dict(MemberConfig, {"temperature_policy": NAME}, "student")


def test_a_study_uses_the_policy_by_name_and_the_report_draws_it(linear_decay, tmp_path, capsys):
    path = write_yaml(tmp_path / "s.yaml", study(grid={"student.temperature_policy": ["fixed", NAME]}))
    output = tmp_path / "out"
    assert main(["study", "run", path, "--output", str(output), "--quiet"]) == 0
    assert main(["report", str(output)]) == 0
    report = "\n".join(p.read_text() for p in (output / "report").glob("*.md"))
    assert "| linear decay |" in report  # its runs, under its display name
    assert (output / "report" / "temperatures.png").is_file()  # its temperature over training, drawn
