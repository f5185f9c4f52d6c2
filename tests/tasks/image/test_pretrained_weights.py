"""Pretrained weights that cannot be had stop preflight in one line (issue item 1).

A study whose student is ``{name: resnet18, init: pretrained}`` on a machine without internet
passed ``study plan``; ``study run`` then retried the hub 5 times per run (about 45 s each) and every
run failed with a multi-line hub message. Now preflight finds each pretrained name in the local
caches timm uses (the Hugging Face hub cache, torch.hub's ``checkpoints``), or reaches the hub once
with a short timeout (never with ``HF_HUB_OFFLINE=1``), and otherwise stops naming the field.
"""

import http.server
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from kdtemp.tasks.image import models

from helpers.pretrained import COMMIT, plant_hf  # noqa: F401  (COMMIT: the planted revision)
from helpers.cli import assert_one_line, run_cli
from helpers.trust import BASE, study, write_yaml

@pytest.fixture
def hub(tmp_path, monkeypatch):
    """Empty caches under ``tmp_path``, a hub that refuses connections (nothing listens on port 9),
    and no internet: a connection to anything but this machine is refused, as on the machines of
    the issue (so the tests answer the same wherever they run)."""
    import huggingface_hub.constants as constants

    connect = socket.socket.connect

    def local_only(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise ConnectionRefusedError(111, "Connection refused (no internet in this test)")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setattr(models, "_REACHED", {})  # what earlier tests learned of the hosts is not this test's

    home = tmp_path / "hf"
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGINGFACE_HUB_CACHE", "TIMM_USE_OLD_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    # what huggingface_hub read when it was imported (timm asks it at run time)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    return tmp_path


def pretrained_student(name="resnet18"):
    return {**BASE, "student": {**BASE["student"], "model": {"name": name, "init": "pretrained"}}}


def plan(tmp_path, capsys, base, action="plan"):
    path = write_yaml(tmp_path / "s.yaml", study(base=base))
    started = time.monotonic()
    code, out, err = run_cli(["study", action, path, "--output", str(tmp_path / "out"), "--quiet"], capsys)
    return code, out, err, time.monotonic() - started


def test_an_unreachable_hub_with_nothing_cached_stops_plan_in_one_line(hub, capsys):
    code, _, err, seconds = plan(hub, capsys, pretrained_student())
    assert_one_line(code, err, "student.model.init:", "'resnet18'", "timm/resnet18.a1_in1k", "not in the local cache",
                    "could not be reached", "student.model.weights")
    assert seconds < 10  # one attempt with a short timeout, no retries


def test_run_stops_before_any_work_and_honours_hf_hub_offline(hub, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(self, address):
        raise AssertionError(f"HF_HUB_OFFLINE=1 is set: nothing may reach the network (asked {address})")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    code, _, err, seconds = plan(hub, capsys, pretrained_student(), action="run")
    assert_one_line(code, err, "student.model.init:", "'resnet18'", "HF_HUB_OFFLINE=1")
    assert seconds < 10
    assert not (hub / "out").exists()  # nothing written: no store, no run folders


def test_a_planted_cached_copy_is_accepted(hub, capsys, monkeypatch):
    plant_hf(hub, "timm/resnet18.a1_in1k")
    code, out, err, _ = plan(hub, capsys, pretrained_student())
    assert code == 0 and err == "", err
    assert "nothing is wrong that can be found before training" in out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err, _ = plan(hub, capsys, pretrained_student())
    assert code == 0 and err == "", err


def test_a_cached_copy_of_the_pickled_file_is_accepted_too(hub, capsys):
    plant_hf(hub, "timm/resnet18.a1_in1k", "pytorch_model.bin")
    code, _, err, _ = plan(hub, capsys, pretrained_student())
    assert code == 0 and err == "", err


def test_weights_timm_fetches_by_url_are_found_in_torch_hubs_cache(hub, capsys):
    code, _, err, _ = plan(hub, capsys, pretrained_student("gcvit_xxtiny"))
    assert_one_line(code, err, "student.model.init:", "'gcvit_xxtiny'", "gcvit_xxtiny_224_nvidia-d1d86009.pth",
                    "not in the local cache")
    checkpoints = hub / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save({"x": torch.zeros(2)}, checkpoints / "gcvit_xxtiny_224_nvidia-d1d86009.pth")
    code, _, err, _ = plan(hub, capsys, pretrained_student("gcvit_xxtiny"))
    assert code == 0 and err == "", err


def test_a_model_timm_has_no_pretrained_weights_for_is_refused(hub, capsys):
    code, _, err, _ = plan(hub, capsys, pretrained_student("botnet50ts_256"))
    assert_one_line(code, err, "student.model.init:", "timm has no pretrained weights for 'botnet50ts_256'")


def test_a_teacher_preparation_from_the_hub_is_checked_too(hub, capsys):
    config = write_yaml(hub / "t.yaml", {"data": BASE["data"], "augment": BASE["augment"], "batch_size": 16,
                                         "device": "cpu", "model": {"name": "resnet18", "init": "pretrained"},
                                         "epochs": 1, "output": str(hub / "teacher")})
    code, _, err = run_cli(["teacher", config, "--quiet"], capsys)
    assert_one_line(code, err, "model.init:", "'resnet18'", "not in the local cache")
    assert not (hub / "teacher").exists()


class LocalHub:
    """A hub on this machine that answers every ``HEAD`` with ``status`` and records the paths asked."""

    def __init__(self, status):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                seen.append(self.path)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_a_hub_that_serves_the_weights_is_asked_once_per_name(hub, capsys, monkeypatch):
    """Nothing cached, but the hub serves the files: accepted (``run`` downloads them), after one
    request per name and no retries."""
    base = pretrained_student()
    path = write_yaml(hub / "s.yaml", study(base=base, grid={"student.model.name": ["resnet18", "resnet34"]}))
    with LocalHub(200) as local:
        monkeypatch.setenv("HF_ENDPOINT", local.endpoint)
        code, _, err = run_cli(["study", "plan", path, "--output", str(hub / "out")], capsys)
        code_again, _, _ = run_cli(["study", "plan", path, "--output", str(hub / "out")], capsys)
    assert code == 0 and code_again == 0 and err == "", err
    assert local.seen == ["/timm/resnet18.a1_in1k/resolve/main/model.safetensors",
                          "/timm/resnet34.a1_in1k/resolve/main/model.safetensors"]


def test_a_hub_that_answers_without_the_weights_is_refused(hub, capsys, monkeypatch):
    """A proxy or a hub that answers 404 for every file does not make the weights downloadable."""
    with LocalHub(404) as local:
        monkeypatch.setenv("HF_ENDPOINT", local.endpoint)
        code, _, err, _ = plan(hub, capsys, pretrained_student())
    assert_one_line(code, err, "student.model.init:", "'resnet18'", "answered HTTP 404", "pytorch_model.bin")
    assert local.seen == ["/timm/resnet18.a1_in1k/resolve/main/model.safetensors",
                          "/timm/resnet18.a1_in1k/resolve/main/pytorch_model.bin"]  # each file once
