"""Configuration files (``kdtemp.config``): YAML reads exponent floats and refuses duplicate keys."""

from kdtemp.config import parse_yaml
from kdtemp.study import load_study

from helpers.cli import assert_one_line, run_cli
from helpers.trust import BASE, study, write_yaml


def test_yaml_reads_exponent_floats_and_refuses_duplicate_keys(tmp_path, capsys):
    assert parse_yaml("lr: 1e-3\nwd: 5E-4\nn: 1_000", "x") == {"lr": 0.001, "wd": 0.0005, "n": 1000}
    base = {**BASE, "student": {**BASE["student"], "optimizer": {"lr": "LR"}}}
    text = (tmp_path / "t.yaml")
    write_yaml(text, study(base=base))
    text.write_text(text.read_text().replace("lr: LR", "lr: 1e-3"))
    s = load_study(text)
    assert s.runs[0].spec.student.optimizer.lr == 0.001
    text.write_text(text.read_text() + "seeds: [1]\n")
    code, _, err = run_cli(["study", "plan", str(text)], capsys)
    assert_one_line(code, err, "key 'seeds' appears twice in one mapping")
