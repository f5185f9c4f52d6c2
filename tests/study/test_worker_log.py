"""The local executor's workers write one line per epoch to the driver's log, named by cohort."""

from kdtemp.study import load_study, run_study

from helpers.trust import study, write_yaml


def test_a_local_worker_logs_one_line_per_epoch_with_its_cohort(tmp_path, capfd):
    data = study(grid={"student.temperature": [1, 4]}, executor={"kind": "local", "workers": 1, "threads": 1})
    data["base"]["student"]["epochs"] = 2
    s = load_study(write_yaml(tmp_path / "s.yaml", data), output=tmp_path / "study")
    run_study(s)
    err = capfd.readouterr().err
    (cohort,) = s.cohorts
    lines = [line for line in err.splitlines() if line.startswith(f"cohort {cohort.cohort_id}: cohort of 2:")]
    assert len(lines) == 2, err
    assert "epoch=1" in lines[0] and "epoch=2" in lines[1]
