"""Report figures (``kdtemp.report.figures``): a cross-entropy-only run (no objective, or a KD
weight of 0) has no temperature: the figures show it as its own reference line labelled as
training without distillation, never as a method that "sets its own temperature" and never at a T
column."""

from kdtemp.report import figures
from kdtemp.report.tables import aggregate, aggregate_points, records

from helpers.report import run


def legend(figure):
    return [text.get_text() for text in figure.legends[0].get_texts()] if figure.legends else \
        figure.axes[0].get_legend_handles_labels()[1]


def test_cross_entropy_only_runs_are_labelled_as_such_and_never_at_a_temperature():
    # what the store holds: resolved configs, temperature null where the run uses none
    items = records([run(1, None, None), run(2, "kd", 4.0), run(3, "kd", 2.0), run(4, "kd", None, "dts"),
                     run(5, "kd", None, kd_weight=0.0), run(6, "ctkd", None, "ctkd")])
    assert [r.distills for r in items] == [False, True, True, True, False, True]
    assert all(r.temperature is None for r in items if not r.distills)
    assert not any("objective=None" in row for row in aggregate(items, "final_top1"))
    assert len(aggregate_points(items, "final_top1")) == 4

    labels = legend(figures.curves(items, "final_top1", "final top-1 (%)"))
    no_kd = [label for label in labels if "no KD" in label]
    assert len(no_kd) == 2 and not any("own T" in label for label in no_kd), labels
    assert any(label.startswith("DTS") and "own T" not in label for label in labels), labels

    labels = legend(figures.by_objective(items, "final_top1", "final top-1 (%)", ["kd", "ctkd", None], "methods"))
    no_kd = [label for label in labels if label.startswith("cross-entropy only (no KD)")]
    assert len(no_kd) == 2 and not any("shared fixed T" in label or "own T" in label for label in no_kd), labels
    assert any(label.startswith("CTKD (learned T)") for label in labels), labels
    assert any(label.startswith("DTS") for label in labels), labels
