"""The GLUE tasks kdtemp distils on: their columns, label names, metrics and primary metric.

Each task is read either through ``datasets`` (``nyu-mll/glue``, where a machine is online or has it
cached) or from GLUE's own TSV files in a local folder (``train.tsv``, ``dev.tsv``; MNLI's
``dev_matched.tsv`` and ``dev_mismatched.tsv``), with the columns those files have. Evaluation is on
the validation split, as GLUE's development results are reported (the test splits carry no labels).
STS-B is refused: it is a regression task (a similarity score in [0, 5]), which neither this
classification task nor the distillation objectives (distributions over classes) take.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: the text columns (a pair for two-sentence tasks) and label names of its
    ``datasets`` form and of its TSV files, its metrics and which of them is primary."""

    name: str
    hub_columns: tuple[str, ...]
    label_names: tuple[str, ...]
    tsv_columns: tuple[str, ...]  # the text columns of GLUE's TSV files
    tsv_label: str | int  # the label column (a name, or an index for CoLA's header-less files)
    metrics: tuple[str, ...]
    primary: str
    test_splits: tuple[str, ...] = ("validation",)  # hub split names; the first is primary
    tsv_files: dict[str, str] = field(default_factory=lambda: {"train": "train.tsv", "validation": "dev.tsv"})
    tsv_header: bool = True
    tsv_text_index: tuple[int, ...] = ()  # CoLA: the sentence is column 3 of a file without a header


ACCURACY, F1, MCC = "accuracy", "f1", "mcc"

GLUE: dict[str, GlueTask] = {task.name: task for task in (
    GlueTask("sst2", ("sentence",), ("negative", "positive"), ("sentence",), "label", (ACCURACY,), ACCURACY),
    GlueTask("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("#1 String", "#2 String"),
             "Quality", (F1, ACCURACY), F1),
    GlueTask("cola", ("sentence",), ("unacceptable", "acceptable"), (), 1, (MCC, ACCURACY), MCC,
             tsv_header=False, tsv_text_index=(3,)),
    GlueTask("qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("question", "sentence"), "label",
             (ACCURACY,), ACCURACY),
    GlueTask("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("sentence1", "sentence2"), "label",
             (ACCURACY,), ACCURACY),
    GlueTask("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("question1", "question2"),
             "is_duplicate", (F1, ACCURACY), F1),
    GlueTask("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("sentence1", "sentence2"),
             "gold_label", (ACCURACY,), ACCURACY, test_splits=("validation_matched", "validation_mismatched"),
             tsv_files={"train": "train.tsv", "validation_matched": "dev_matched.tsv",
                        "validation_mismatched": "dev_mismatched.tsv"}),
)}

REFUSED = {"stsb": "STS-B is a regression task (a similarity score in [0, 5]); kdtemp's text classification and its "
                   "objectives (distributions over classes) do not take it",
           "wnli": "WNLI's development set is adversarial to its training set (GLUE's own note); kdtemp leaves it out",
           "ax": "AX is GLUE's diagnostic set, without a training split"}

MISMATCHED_SUFFIX = "_mm"
"""MNLI's mismatched validation metrics carry this suffix (``accuracy_mm``)."""
