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
