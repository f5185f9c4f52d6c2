"""Instance-wise DTS (objectives.md, temperature policies): one DTS state per training sample."""

import types

import pytest
import torch

from kdtemp.config import ConfigError
from kdtemp.engine import DTSConfig, run_cohort
from kdtemp.objectives import kd_loss
from kdtemp.temperature import DTSPolicy, create_policy

from helpers.engine import cohort, member
from helpers.tolerance import float32_rel


def test_with_every_sample_s_gap_equal_it_moves_exactly_as_batch_wise_dts():
    dts = DTSConfig(initial=8, minimum=4, maximum=8)
    # every sample seen in every step (batches of the whole set), each with the batch's gap: each
    # holds exactly batch-wise DTS's value, step after step
    whole = create_policy("dts_instance", temperature=4.0, dts=dts, samples=4)
    again = DTSPolicy(8, 4, 8)
    for step in range(12):
        gap = torch.tensor(0.5 + 0.25 * step, dtype=torch.float64)
        used = whole.current(types.SimpleNamespace(indices=torch.arange(4)))
        expected = again.current()
        assert torch.equal(used.double().squeeze(1), torch.full((4,), float(expected), dtype=torch.float64).float().double())
        again.after_step(expected, lambda per_sample=False: (gap + 1.0, torch.ones((), dtype=torch.float64)), 3, 8)
        whole.after_step(used, lambda per_sample=False: ((gap + 1.0).repeat(4), torch.ones(4, dtype=torch.float64)),
                         3, 8)
        assert torch.equal(whole.values, torch.full((4,), float(again.current()), dtype=torch.float64))


def test_per_sample_temperatures_give_mean_of_t_squared_kl():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    temps = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    expected = torch.stack([kd_loss(s[i:i + 1], t[i:i + 1], float(temps[i])) for i in range(5)]).mean()
    assert torch.allclose(kd_loss(s, t, temps.unsqueeze(1)), expected, rtol=float32_rel(7 + 5), atol=0)
    equal = torch.full((5, 1), 4.0)
    assert torch.allclose(kd_loss(s, t, equal), kd_loss(s, t, 4.0), rtol=float32_rel(7 + 5), atol=0)


def test_its_state_survives_a_kill_and_resume_bit_for_bit(tmp_path):
    config = cohort([member(temperature_policy="dts_instance", dts=DTSConfig(initial=3, minimum=1, maximum=3), epochs=3)])
    (whole,) = run_cohort(config, output=tmp_path / "whole", progress=False)

    class Kill(Exception):
        pass

    def kill(epoch, step):
        if epoch == 2 and step == 2:
            raise Kill()

    with pytest.raises(Kill):
        run_cohort(config, output=tmp_path / "killed", progress=False, step_callback=kill)
    (resumed,) = run_cohort(config, output=tmp_path / "killed", progress=False)
    assert resumed.curve == whole.curve
    spreads = [row["temperature_distribution"] for row in whole.curve]  # one per epoch, in the curve
    assert [row["temperature_distribution"] for row in resumed.curve] == spreads and len(spreads) == 3
    spread = spreads[-1]
    assert 1.0 <= spread["min"] <= spread["q1"] <= spread["median"] <= spread["q3"] <= spread["max"] <= 3.0
    assert spread["min"] < spread["max"]  # the samples' temperatures differ


def test_only_kd_takes_per_sample_temperatures():
    with pytest.raises(ConfigError, match="dts_instance gives each sample its own temperature"):
        member(objective="dkd", temperature_policy="dts_instance").validate()
