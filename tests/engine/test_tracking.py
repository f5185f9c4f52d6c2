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


def wandb_records(path):
    """The records of a W&B offline run file (``run-<id>.wandb``): a LevelDB-style log of 32 KiB
    blocks, each record ``crc32 (4) | length (2) | kind (1) | data``, after a 7-byte ``:W&B`` header;
    each record is a ``wandb_internal_pb2.Record``."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, position, pending, records = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == 0 and length == 0:  # block padding
            position += left - 7
        elif kind == 1:  # a whole record
            records.append(chunk)
        elif kind in (2, 3):  # its first or middle part
            pending = chunk if kind == 2 else pending + chunk
        elif kind == 4:  # its last part
            records.append(pending + chunk)
    parsed = []
    for chunk in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(chunk)
        parsed.append(record)
    return parsed


def test_weights_and_biases_logs_every_epoch_the_config_and_the_label_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B is an optional extra: pip install 'kdtemp[wandb]'")
    import json

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = cohort([member(epochs=2)], logging=LoggingConfig(wandb=True, wandb_project="kdtemp-test"))
    (result,) = run_cohort(config, output=tmp_path, progress=False)
    (run_file,) = (tmp_path / result.run_id / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_id == result.run_id and run.display_name == result.label == "kd-T4-adamw"
    logged_config = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in run.config.update}
    assert logged_config["member"]["epochs"] == 2 and logged_config["batch_size"] == config.batch_size
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    assert [h["epoch"] for h in history] == [1, 2]
    for logged, epoch in zip(history, result.curve):
        for key in ("train_loss", "top1", "top5", "test_loss", "temperature", "lr"):
            assert logged[key] == pytest.approx(epoch[key]), key
