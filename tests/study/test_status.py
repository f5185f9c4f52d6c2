"""study status while an inline run trains its first cohort: only that cohort's runs are running."""

from kdtemp.study import Store, load_study, run_study, store_path

from helpers.trust import study, write_yaml


class Stop(BaseException):  # not caught as a broken cohort
    pass


def test_only_the_cohort_that_trains_is_running(tmp_path, monkeypatch):
    from kdtemp.study import executors

    s = load_study(write_yaml(tmp_path / "s.yaml", study(seeds=[0, 1, 2])), output=tmp_path / "study")
    assert len(s.cohorts) == 3 and len(s.runs) == 6
    seen = []
    real = executors.train_cohort

    def train(*args, **kwargs):
        with Store(store_path(s), readonly=True) as store:
            seen.append(store.counts(r.run_id for r in s.runs))
        if len(seen) == 2:
            raise Stop()  # the driver stops in its second cohort, as a kill would
        return real(*args, **kwargs)

    monkeypatch.setattr(executors, "train_cohort", train)
    try:
        run_study(s, progress=False)
    except Stop:
        pass
    assert seen[0]["running"] == 2 and seen[0]["pending"] == 4  # before: all 6 were running
    assert seen[1]["running"] == 2 and seen[1]["done"] == 2


def test_a_finished_member_is_done_while_its_cohort_trains_and_a_resume_keeps_it(tmp_path, monkeypatch):
    from kdtemp.engine.member import Member
    from kdtemp.study.driver import status

    data = study(grid={"student.epochs": [1, 3]})  # one cohort: a member of one epoch beside one of three
    s = load_study(write_yaml(tmp_path / "s.yaml", data), output=tmp_path / "study")
    short, long = sorted(s.runs, key=lambda run: run.spec.student.epochs)
    real = Member.begin_epoch
    seen, begun = {}, []

    def begin_epoch(self, epoch):
        begun.append((self.run_id, epoch))
        if epoch == 2 and "epoch 2" not in seen:
            with Store(store_path(s), readonly=True) as store:
                seen["epoch 2"] = {run["run_id"]: run["status"] for run in store.runs()}
            seen["status"] = status(s)
        if epoch == 3 and "killed" not in seen:
            seen["killed"] = True
            raise Stop()  # the driver dies in the long member's last epoch
        real(self, epoch)

    monkeypatch.setattr(Member, "begin_epoch", begin_epoch)
    try:
        run_study(s, progress=False)
    except Stop:
        pass
    assert seen["epoch 2"] == {short.run_id: "done", long.run_id: "running"}  # done before its cohort ended
    assert "0 pending, 1 running, 1 done, 0 failed" in seen["status"]
    with Store(store_path(s), readonly=True) as store:
        after = {run["run_id"]: run for run in store.runs()}
    assert after[short.run_id]["status"] == "done" and after[short.run_id]["final_primary"] is not None
    assert after[long.run_id]["status"] == "pending"
    begun.clear()
    assert run_study(s, progress=False)["done"] == 2
    assert {run_id for run_id, _ in begun} == {long.run_id} and begun == [(long.run_id, 3)]  # nothing retrained


def test_plan_counts_runs_the_store_has_not_registered_as_to_go(tmp_path, capsys):
    from kdtemp.cli import main

    output = tmp_path / "study"
    run_study(load_study(write_yaml(tmp_path / "s.yaml", study()), output=output), progress=False)
    wider = write_yaml(tmp_path / "s.yaml", study(grid={"student.temperature": [1, 2, 4, 8]}))
    assert main(["study", "plan", wider, "--output", str(output)]) == 0
    assert "store: 2 done, 0 failed, 2 to go" in capsys.readouterr().out  # it printed "0 to go"
