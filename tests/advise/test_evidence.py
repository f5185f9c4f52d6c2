"""The advisor's evidence from the user's own runs: it only ever suggests a temperature those
runs used, says when their rows disagree, reads no preference into a row where every T ties,
and does not let runs of a very different training length override the rules."""

from kdtemp.advise import Setup, advise

from helpers.advise import kd_store

SETUP = dict(teacher_origin="pretrained", finetune_epochs=20, optimizer="adamw", epochs=64, granularity="fine",
             class_overlap=True, dataset="pets", teacher="resnet50")


def store(path, cells, epochs=64):
    """Finished fixed-T KD runs: ``cells[(lr, T)] = [top-1 per seed]`` (rows differ in lr)."""
    return kd_store(path, {("pets", "resnet50", t, lr): v for (lr, t), v in cells.items()}, name="mine", epochs=epochs)


def test_disagreeing_rows_never_give_a_temperature_no_run_used(tmp_path):
    """Two rows favour T = 2 and T = 40 clearly over the rules' T (4 here): the old median gave 21."""
    assert advise(Setup(**SETUP)).suggested == 4.0

    def row(best):
        return {t: ([80.0, 80.1] if t == best else [60.0, 60.1]) for t in (1, 2, 4, 40)}

    past = store(tmp_path / "s", {(lr, t): v for lr, best in ((0.002, 2), (0.01, 40)) for t, v in row(best).items()})
    advice = advise(Setup(**SETUP), [past])
    assert advice.suggested == 2.0  # one row each: the lower of the two, a T the runs used
    assert "the rows disagree (they favour T = 2, 40)" in advice.reasons[0]
    three = store(tmp_path / "t", {(lr, t): v for lr, best in ((0.001, 40), (0.002, 2), (0.01, 40))
                                   for t, v in row(best).items()})
    assert advise(Setup(**SETUP), [three]).suggested == 40.0  # the T most rows favour


def test_a_row_where_every_temperature_ties_shows_no_preference(tmp_path):
    past = store(tmp_path / "s", {(0.05, 1): [10.0, 10.0], (0.05, 4): [10.0, 10.0], (0.05, 20): [10.0, 10.0]})
    advice = advise(Setup(**SETUP), [past])
    assert advice.suggested == advise(Setup(**SETUP)).suggested
    assert "every temperature ties" in advice.evidence[0] and "best T" not in advice.evidence[0]


def test_runs_of_a_very_different_length_do_not_override_the_rules(tmp_path):
    cells = {(0.002, 2): [85.0, 85.2], (0.002, 4): [60.0, 60.2], (0.002, 20): [60.0, 60.2]}
    past = store(tmp_path / "s", cells, epochs=1)
    long = Setup(**{**SETUP, "epochs": 1000})
    advice = advise(long, [past])
    assert advice.suggested == advise(long).suggested != 2.0
    assert "closest runs have 1 epochs, far from your 1000" in advice.evidence[0]
    short = Setup(**{**SETUP, "epochs": 1})
    assert advise(short).suggested != 2.0
    assert advise(short, [past]).suggested == 2.0  # the same runs do count for a 1-epoch setup
