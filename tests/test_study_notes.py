"""Plan notes (kdtemp.study.spec): one note per axis and field, however many runs it concerns."""

from kdtemp.study import load_study

from trust_helpers import study, write_yaml


def test_temperature_methods_times_temperatures_gives_one_note_per_axis_and_field(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", study(grid=None, presets=["temperature_methods", "temperatures"]))
    notes = load_study(path, output=tmp_path / "study").notes
    # the loss preset takes effect through a run's resolved weights: setting it is using it
    assert not any("loss_preset" in note for note in notes), notes
    assert len(notes) == 1, notes  # before: 76 notes, one per run
    assert "does not apply to ctkd-learned-T-adamw and kd-dts[4,8]-adamw" in notes[0]
    assert "their 18 cells train 2 runs" in notes[0]


def test_many_runs_that_ignore_a_zip_field_share_one_note(tmp_path):
    zip_axis = {"student.objective": [None, None, "kd"], "student.temperature": [2, 7, 4],
                "student.optimizer.lr": [1e-3, 2e-3, 3e-3]}
    path = write_yaml(tmp_path / "s.yaml", study(grid=None, zip=[zip_axis], seeds=[0, 1]))
    notes = load_study(path, output=tmp_path / "study").notes
    assert len(notes) == 1, notes
    assert "ce-adamw does not use student.temperature" in notes[0], notes
    assert "None, 2, 0.001" in notes[0] and "None, 7, 0.002" in notes[0]
