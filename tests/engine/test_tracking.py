"""Per-epoch logs: metrics.csv in every run folder, TensorBoard when asked, nothing imported when not."""

import csv
import subprocess
import sys

import pytest

from kdtemp.config import ConfigError, from_dict
from kdtemp.engine import run_cohort
from kdtemp.engine.storage import RunFolder
from kdtemp.engine.tracking import LoggingConfig

from helpers.engine import cohort, member


class Interrupt(Exception):
    pass


def read_csv(folder):
    return list(csv.DictReader((folder.path / "metrics.csv").open()))


def test_metrics_csv_has_one_row_per_epoch_also_after_a_crash(tmp_path):
    config = cohort([member(epochs=3)])

    def crash(epoch, step):
        if epoch == 3 and step == 1:
            raise Interrupt()

    with pytest.raises(Interrupt):
        run_cohort(config, output=tmp_path, progress=False, step_callback=crash)
    (result,) = run_cohort(config, output=tmp_path, progress=False)
    rows = read_csv(RunFolder(tmp_path, result.run_id))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for row, record in zip(rows, result.curve):
        assert float(row["top1"]) == pytest.approx(record["top1"]) and float(row["lr"]) == pytest.approx(record["lr"])
        assert float(row["train_loss"]) == pytest.approx(record["train_loss"])


def test_tensorboard_event_files_hold_every_epoch(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard is an optional extra: pip install 'kdtemp[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = cohort([member(epochs=2)], logging=LoggingConfig(tensorboard=True))
    (result,) = run_cohort(config, output=tmp_path, progress=False)
    (folder,) = (tmp_path / result.run_id / "tensorboard").iterdir()
    assert folder.name == result.label == "kd-T4-adamw"  # TensorBoard lists the run by its label
    events = EventAccumulator(str(folder))
    events.Reload()
    top1 = events.Scalars("top1")
    assert [e.step for e in top1] == [1, 2]
    assert [e.value for e in top1] == pytest.approx([r["top1"] for r in result.curve])
    assert {"train_loss", "top5", "test_loss", "temperature", "lr"} <= set(events.Tags()["scalars"])
    assert "run/text_summary" in events.Tags()["tensors"]  # the label and the configuration, as text
    text = events.Tensors("run/text_summary")[0].tensor_proto.string_val[0].decode()
    assert result.run_id in text and "kd-T4-adamw" in text and "batch_size" in text


def test_nothing_is_imported_when_trackers_are_off(tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(tmp_path.parent)!r})
from kdtemp.engine import run_cohort, CohortConfig, MemberConfig
from kdtemp.tasks.image.data import DataConfig, AugmentConfig
from kdtemp.tasks.image.models import ModelConfig
config = CohortConfig(data=DataConfig(dataset="digits", resolution=8, train_per_class=8, test_per_class=4),
                      augment=AugmentConfig(randaugment_ops=0), teacher=ModelConfig("resnet20"), batch_size=16,
                      members=[MemberConfig(epochs=1)], device="cpu")
run_cohort(config, output={str(tmp_path)!r}, progress=False)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorboard", "wandb", "tensorboardX")))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-1000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_tracker_that_is_not_installed_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"logging.wandb: needs the wandb package: pip install 'kdtemp\[wandb\]'"):
        from_dict(LoggingConfig, {"wandb": True}, "logging")


class WandbSpy:
    """kdtemp's boundary with W&B: every ``wandb.init`` kdtemp makes, and every ``log`` and ``finish``
    on the runs it returns, recorded and passed on to the real ``wandb`` (in offline mode). The test
    reads what kdtemp asked of W&B's public API, never W&B's private file formats."""

    def __init__(self, monkeypatch):
        import wandb

        monkeypatch.setenv("WANDB_MODE", "offline")
        monkeypatch.setenv("WANDB_SILENT", "true")
        self.calls: list[tuple] = []
        real_init = wandb.init

        def init(**kwargs):
            run = real_init(**kwargs)
            self.calls.append(("init", kwargs, run))
            real_log, real_finish = run.log, run.finish

            def log(data, step=None, **rest):
                self.calls.append(("log", dict(data), step))
                return real_log(data, step=step, **rest)

            def finish(exit_code=None, **rest):
                self.calls.append(("finish", exit_code, run))
                return real_finish(exit_code=exit_code, **rest)

            run.log, run.finish = log, finish
            return run

        monkeypatch.setattr(wandb, "init", init)

    def kinds(self) -> list[str]:
        return [call[0] for call in self.calls]


def test_weights_and_biases_logs_every_epoch_the_config_and_the_label_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B is an optional extra: pip install 'kdtemp[wandb]'")
    spy = WandbSpy(monkeypatch)
    config = cohort([member(epochs=2)], logging=LoggingConfig(wandb=True, wandb_project="kdtemp-test"))
    (result,) = run_cohort(config, output=tmp_path, progress=False)
    # one W&B run for the kdtemp run, a row per epoch, finished (successfully) before run_cohort returned
    assert spy.kinds() == ["init", "log", "log", "finish"]
    (_, init, run), *logs, (_, exit_code, finished) = spy.calls
    assert init["id"] == run.id == result.run_id and init["name"] == run.name == result.label == "kd-T4-adamw"
    assert init["project"] == "kdtemp-test" and init["resume"] == "allow"
    assert init["config"]["member"]["epochs"] == 2 and init["config"]["batch_size"] == config.batch_size
    assert finished is run and exit_code == 0
    assert [step for _, _, step in logs] == [1, 2]
    for (_, logged, _), epoch in zip(logs, result.curve):
        assert logged["epoch"] == epoch["epoch"]
        for key in ("train_loss", "top1", "top5", "test_loss", "temperature", "lr"):
            assert logged[key] == epoch[key], key
    # W&B's offline run lives in the run folder, named by the run id (W&B's documented layout)
    assert [p.name.endswith(f"-{result.run_id}") for p in (tmp_path / result.run_id / "wandb").glob("offline-run-*")] \
        == [True]


def test_an_interrupted_run_finishes_its_weights_and_biases_run_as_failed_and_resumes_it(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B is an optional extra: pip install 'kdtemp[wandb]'")
    spy = WandbSpy(monkeypatch)
    config = cohort([member(epochs=3)], logging=LoggingConfig(wandb=True))

    def crash(epoch, step):
        if epoch == 2 and step == 0:
            raise Interrupt()

    with pytest.raises(Interrupt):
        run_cohort(config, output=tmp_path, progress=False, step_callback=crash)
    # finished (exit code 1) before the exception left kdtemp: nothing waits on the process's exit
    assert spy.kinds() == ["init", "log", "finish"] and spy.calls[-1][1] == 1
    spy.calls.clear()
    (result,) = run_cohort(config, output=tmp_path, progress=False)
    (_, init, run), *logs, (_, exit_code, _) = spy.calls
    assert init["id"] == result.run_id and init["resume"] == "allow" and exit_code == 0
    assert [step for _, _, step in logs] == [2, 3]  # the same W&B run goes on from the checkpoint
