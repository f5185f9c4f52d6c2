"""A task registered inside this file, touching nothing in kdtemp: a 2-class synthetic sequence task
(is a sequence's sum above its median?) with its own metric. It trains a cohort, runs in a study, is
costed by ``plan`` and appears in the report: the task seam holds for a task kdtemp does not ship."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from kdtemp.cli import main
from kdtemp.engine import CohortConfig, run_cohort
from kdtemp.engine.config import member_config
from kdtemp.tasks import TASKS, ModelAdapter, Task
from kdtemp.tasks.base import MetricName, Preflight, stream_seed
from kdtemp.tasks.hf import FileFreeData, NotAugmented

from helpers.trust import write_yaml

NAME = "toy_sequences"


@dataclass
class ToyDataConfig(FileFreeData):
    """``train`` and ``test`` sequences of ``length`` digits drawn with ``seed``."""

    dataset: str = "toy"  # what every task's data config has: the name reports show
    train: int = 96
    test: int = 48
    length: int = 8
    seed: int = 0

    def validate(self, path: str = "data") -> None:
        if self.train < 2 or self.test < 1:
            from kdtemp.config import ConfigError

            raise ConfigError(f"{path}.train: at least 2 sequences")

    def unused_fields(self) -> set[str]:
        return set()


@dataclass
class ToyAugmentConfig(NotAugmented):
    pass


@dataclass
class ToyModelConfig:
    name: str = "toy"
    width: int = 8
    init: str = "random"
    weights: str | None = None
    prepared: str | None = None  # what every task's model config has: a study's preparation sets it

    def validate(self, path: str = "model") -> None:
        pass

    def unused_fields(self) -> set[str]:
        return set()


def sequences(count: int, length: int, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 10, (count, length), generator=generator)
    return tokens, (tokens.sum(1) > 4.5 * length).long()


@dataclass
class ToyBatch:
    tokens: Tensor
    targets: Tensor
    indices: Tensor

    def cross_entropy(self, logits: Tensor, label_smoothing: float = 0.0) -> Tensor:
        return nn.functional.cross_entropy(logits, self.targets, label_smoothing=label_smoothing)

    def per_sample_cross_entropy(self, logits: Tensor) -> Tensor:
        return nn.functional.cross_entropy(logits, self.targets, reduction="none")


class ToyStream:
    def __init__(self, tokens: Tensor, labels: Tensor, batch_size: int, data_seed: int) -> None:
        self.tokens, self.labels, self.batch_size, self.data_seed = tokens, labels, batch_size, data_seed
        self.batches_per_epoch = len(tokens) // batch_size

    def epoch(self, epoch: int):
        order = torch.randperm(len(self.tokens), generator=torch.Generator().manual_seed(stream_seed(self.data_seed, epoch)))
        for start in range(0, self.batches_per_epoch * self.batch_size, self.batch_size):
            rows = order[start:start + self.batch_size]
            yield ToyBatch(self.tokens[rows], self.labels[rows], rows)


@dataclass
class ToyData:
    train: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    stream: ToyStream
    num_classes: int = 2

    @property
    def train_size(self) -> int:
        return len(self.train[0])


class ToyModel(ModelAdapter):
    def __init__(self, width: int) -> None:
        self.module = nn.Sequential(nn.Embedding(10, width), nn.Flatten(), nn.LazyLinear(2))

    def __call__(self, batch: ToyBatch) -> Tensor:
        return self.module(batch.tokens)

    def metadata(self) -> dict[str, Any]:
        return {}


@dataclass
class ToyFacts:
    data: ToyDataConfig
    classes: list[str]
    train: int
    test: int

    def describe(self) -> str:
        return f"toy sequences: {self.train} train / {self.test} test"


class ToyTask(Task):
    name = NAME
    primary_metric = "sum_accuracy"
    metric_names = {"sum_accuracy": MetricName("sum accuracy (%)", "sum accuracy", "%", "sum accuracy")}
    data_config = ToyDataConfig
    augment_config = ToyAugmentConfig
    model_config = ToyModelConfig

    def preflight(self, cohorts, device="auto", download=True, member_field="student", state=None):
        state = state or Preflight()
        for shared, _ in cohorts:
            state.datasets[Preflight.key(shared.data)] = ToyFacts(shared.data, ["low", "high"], shared.data.train,
                                                                  shared.data.test)
        return state

    def open(self, shared, runtime, progress=False) -> ToyData:
        data = shared.data
        train = sequences(data.train, data.length, data.seed)
        test = sequences(data.test, data.length, data.seed + 1)
        return ToyData(train, test, ToyStream(*train, shared.batch_size, shared.data_seed))

    def create_model(self, config: ToyModelConfig, data: ToyData, runtime, role: str) -> ToyModel:
        model = ToyModel(config.width)
        model.module(data.train[0][:1])  # materialise the lazy layer
        return model

    def scores(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        return {"sum_accuracy": (logits.argmax(1) == labels).double().mean() * 100,
                "loss": nn.functional.cross_entropy(logits, labels)}

    def split_logits(self, model: ToyModel, data: ToyData, split: str, runtime, batch_size: int):
        tokens, labels = data.train if split == "train" else data.test
        with torch.no_grad():
            return model.module(tokens), labels

    def evaluate(self, model: ToyModel, data: ToyData, runtime, batch_size: int) -> dict[str, Tensor]:
        return self.scores(*self.split_logits(model, data, "test", runtime, batch_size))

    def forward_flops(self, model: ToyModelConfig, data: ToyDataConfig, classes: int) -> float:
        return 2.0 * data.length * model.width * classes


@pytest.fixture
def toy_task():
    TASKS[NAME] = ToyTask
    yield ToyTask
    del TASKS[NAME]


def test_a_toy_task_trains_a_cohort(toy_task, tmp_path):
    member = member_config(NAME)
    config = CohortConfig(task=NAME, data=ToyDataConfig(), augment=ToyAugmentConfig(), teacher=ToyModelConfig(width=16),
                          batch_size=16, device="cpu",
                          members=[member(model=ToyModelConfig(), epochs=2, temperature=t) for t in (1.0, 4.0)])
    results = run_cohort(config, output=tmp_path, progress=False)
    assert [r.status for r in results] == ["done", "done"]
    assert all(set(r.curve[-1]) >= {"sum_accuracy", "test_loss", "train_loss", "temperature"} for r in results)


def test_a_toy_task_runs_in_a_study_is_costed_and_reported(toy_task, tmp_path, capsys):
    study = write_yaml(tmp_path / "toy.yaml", {
        "name": "toy", "base": {"task": NAME, "data": {"train": 64, "test": 32}, "teacher": {"width": 16},
                                "batch_size": 16, "student": {"model": {"width": 8}, "epochs": 2}},
        "grid": {"student.temperature": [1, 4]}, "seeds": [0, 1], "executor": {"kind": "inline"}})
    output = tmp_path / "out"
    assert main(["study", "plan", study, "--output", str(output)]) == 0
    planned = capsys.readouterr().out
    assert "toy sequences: 64 train / 32 test" in planned and "GPU-hours" in planned
    assert "could not be counted" not in planned  # the task counted its FLOPs
    assert main(["study", "run", study, "--output", str(output)]) == 0
    capsys.readouterr()
    assert main(["report", str(output)]) == 0
    report = "\n".join(p.read_text() for p in (output / "report").glob("*.md"))
    assert "**final sum accuracy (%)**" in report and "| all runs |" in report  # its metric, by its own name
    assert (output / "report" / "index.html").is_file()
