"""Annealing KD as one two-phase run (objectives.md section 15): phase 2 from the best phase-1 epoch
with a fresh optimizer and schedule, inside a cohort beside other members, resumable in either phase."""

import pytest
import torch

from kdtemp.config import ConfigError
from kdtemp.engine import OptimizerConfig, run_cohort
from kdtemp.engine.member import Member, phase_schedule
from kdtemp.engine.storage import RunFolder
from kdtemp.tasks.image.task import ImageClassification

from helpers.engine import cohort, member


def akd(**kwargs):
    """Three epochs of phase 1 at three levels (tau 3, 2, 1), then two of phase 2, SGD with momentum."""
    defaults = dict(name="akd", objective="akd", temperature_policy="akd", epochs=5,
                    objective_params={"phase1_epochs": 3, "max_level": 3},
                    optimizer=OptimizerConfig(name="sgd", lr=0.05, schedule="step", milestones=[3], clip_norm=None))
    defaults.update(kwargs)
    return member(**defaults)


def test_phase_two_starts_from_the_best_phase_one_epoch_with_a_fresh_optimizer(tmp_path, monkeypatch):
    planted = {1: 20.0, 2: 60.0, 3: 40.0, 4: 10.0, 5: 30.0}  # the best phase-1 epoch is 2, not the last
    real_evaluate = ImageClassification.evaluate
    calls = []

    def evaluate(self, model, data, runtime, batch_size):
        scores = real_evaluate(self, model, data, runtime, batch_size)
        calls.append(model)
        if len(calls) > 1:  # the cohort evaluates its teacher first, then the member after each epoch
            scores["top1"] = torch.tensor(planted[len(calls) - 1])
        return scores

    snapshots, at_start = {}, {}
    real_end, real_begin = Member.end_epoch, Member.begin_epoch

    def end_epoch(self, epoch, evaluation, train_loss):
        real_end(self, epoch, evaluation, train_loss)
        snapshots[epoch] = {k: v.clone() for k, v in self.student.state_dict().items()}

    def begin_epoch(self, epoch):
        real_begin(self, epoch)
        at_start[epoch] = ({k: v.clone() for k, v in self.student.state_dict().items()}, len(self.optimizer.state),
                           self.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(ImageClassification, "evaluate", evaluate)
    monkeypatch.setattr(Member, "end_epoch", end_epoch)
    monkeypatch.setattr(Member, "begin_epoch", begin_epoch)
    (result,) = run_cohort(cohort([akd()]), output=tmp_path, progress=False)

    assert [row["top1"] for row in result.curve] == [planted[e] for e in range(1, 6)]
    weights, optimizer_state, lr = at_start[4]
    assert all(torch.equal(weights[k], snapshots[2][k]) for k in weights)  # epoch 2's weights, taken back
    assert not all(torch.equal(weights[k], snapshots[3][k]) for k in weights)
    assert optimizer_state == 0 and lr == 0.05  # no momentum carried over; the rate starts again
    assert at_start[3][1] > 0 and at_start[3][2] == pytest.approx(0.005)  # before: momentum, the decayed rate
    # phase 1's staircase as the paper's temperature (tau = max_level + 1 - level), none in phase 2
    assert [row["temperature"] for row in result.curve] == [3.0, 2.0, 1.0, None, None]
    assert result.derived["phase_two_from"] == {"epoch": 2, "top1": 60.0}
    # the run's milestone (3 of 5 epochs) scaled to each phase: floor(3 * 3 / 5) = 1, floor(3 * 2 / 5) = 1
    assert result.derived["phases"] == [{"phase": 1, "epochs": 3, "milestones": [1], "lr_warmup_epochs": 0},
                                        {"phase": 2, "epochs": 2, "milestones": [1], "lr_warmup_epochs": 0}]
    assert [round(row["lr"], 6) for row in result.curve] == [0.005, 0.005, 0.005, 0.005, 0.005]


def test_phase_one_is_two_thirds_of_the_run_unless_given():
    assert akd(objective_params={}, epochs=300).phase_one_epochs == 200  # the authors' 200 + 100
    assert akd(objective_params={}, epochs=16).phase_one_epochs == 10
    assert akd(objective_params={"phase1_epochs": 12}, epochs=16).phase_one_epochs == 12
    assert member(epochs=16).phase_one_epochs is None


def test_the_schedule_of_each_phase_is_the_run_s_scaled_to_its_length():
    authors = OptimizerConfig(name="sgd", lr=0.1, schedule="step", milestones=[150, 225], lr_warmup_epochs=6)
    one, two = phase_schedule(authors, 300, 200), phase_schedule(authors, 300, 100)
    assert (one.milestones, one.lr_warmup_epochs) == ([100, 150], 4)  # the authors' x0.1 at 50 % and 75 % of a phase
    assert (two.milestones, two.lr_warmup_epochs) == ([50, 75], 2)


def test_an_akd_member_in_a_cohort_equals_it_alone_and_resumes_in_either_phase(tmp_path):
    members = [akd(), member(name="kd", temperature=2.0, epochs=3, seed=1)]
    together = run_cohort(cohort(members), output=tmp_path / "cohort", progress=False)
    (alone,) = run_cohort(cohort([members[0]]), output=tmp_path / "alone", progress=False)
    assert together[0].curve == alone.curve and together[0].derived["phase_two_from"] == alone.derived["phase_two_from"]

    class Kill(Exception):
        pass

    for where in ((2, 1), (5, 1)):  # in phase 1 (the best epoch so far is in the checkpoint), in phase 2
        def kill(epoch, step, where=where):
            if (epoch, step) == where:
                raise Kill()

        folder = tmp_path / f"killed-{where[0]}"
        with pytest.raises(Kill):
            run_cohort(cohort(members), output=folder, progress=False, step_callback=kill)
        resumed = run_cohort(cohort(members), output=folder, progress=False)
        for a, b in zip(together, resumed):
            assert a.curve == b.curve and a.status == b.status == "done"
        weights = RunFolder(folder, resumed[0].run_id).load_checkpoint()["model"]
        reference = RunFolder(tmp_path / "cohort", together[0].run_id).load_checkpoint()["model"]
        assert all(torch.equal(weights[k], reference[k]) for k in weights)


@pytest.mark.parametrize("changes, message", [
    (dict(temperature_policy="fixed"), "member.temperature_policy: objective 'akd' needs temperature_policy: akd"),
    (dict(objective="kd", objective_params={}), "member.temperature_policy: akd is Annealing KD's staircase"),
    (dict(objective_params={"phase1_epochs": 9, "max_level": 10}, epochs=20),
     r"member.objective_params.phase1_epochs: must be >= max_level \(10\)"),
    (dict(objective_params={"phase1_epochs": 5, "max_level": 5}, epochs=5),
     r"member.objective_params.phase1_epochs: must be less than the run's epochs \(5\)"),
    (dict(objective_params={}, epochs=12),
     r"phase1_epochs: is null, so two thirds of the run's 12 epochs \(8\), which is less than max_level \(10\)"),
])
def test_an_akd_run_that_cannot_train_as_written_is_one_line(changes, message):
    with pytest.raises(ConfigError, match=message):
        akd(**changes).validate()
