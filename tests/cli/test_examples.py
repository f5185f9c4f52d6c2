"""Every example shipped with kdtemp plans, unchanged, against data in each real format (tiny copies
with the real class counts, made here), from a folder outside the checkout."""

import pytest

from kdtemp.cli import main
from kdtemp.paths import examples
from kdtemp.study import load_study

from helpers import fake_datasets
from helpers.fake_datasets import bird_folder
from helpers.pretrained import cached_hub

PRETRAINED = ("convnext_tiny", "mobilenetv4_conv_medium", "regnety_064", "resnet18", "resnet50", "vit_small_patch16_224")
"""The timm models the examples fine-tune from their pretrained weights: cached here, as a user's
machine has them (preflight refuses a pretrained name it cannot find or download)."""

LANGUAGE_MODEL_STUDIES = ("dolly_gpt2", "dts_seqkd_opt", "gkd")
"""The causal-LM examples, planned below with their models' configs in a Hugging Face cache."""
STUDIES = [name for name in examples() if (name.endswith("_study") or name.startswith(("fig", "table", "dts", "temperature")))
           and name not in LANGUAGE_MODEL_STUDIES]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A user's folder: ./data/<dataset> in each format, ./runs/... for the examples that name a teacher."""
    import torch

    from kdtemp.tasks.image.models import ModelConfig, create_model

    root = tmp_path_factory.mktemp("workspace")
    patch = pytest.MonkeyPatch()
    cached_hub(root, PRETRAINED, patch)
    fake_datasets.pets(root / "data" / "pets")
    fake_datasets.cars(root / "data" / "cars")
    fake_datasets.cifar100(root / "data" / "cifar100")
    fake_datasets.tiny_imagenet(root / "data")
    bird_folder(root / "data" / "birds-in-imagenet")
    bird_folder(root / "data" / "birds-fine")
    bird_folder(root / "data" / "cifar10-jpeg", classes=10, train=7, test=1)
    (root / "runs" / "demo" / "teacher").mkdir(parents=True)
    torch.save(create_model(ModelConfig("resnet32"), 10).state_dict(), root / "runs/demo/teacher/teacher.pt")
    yield root
    patch.undo()


@pytest.mark.parametrize("name", STUDIES)
def test_every_example_study_plans_unchanged(workspace, monkeypatch, capsys, name):
    monkeypatch.chdir(workspace)
    weights = {"pets_baseline_study": "runs/pets-resnet50-ft20/teacher.pt"}
    if name in weights:  # the one example that names a teacher prepared outside the study
        import torch

        from kdtemp.tasks.image.models import ModelConfig, create_model

        path = workspace / weights[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(create_model(ModelConfig("resnet50"), 37).state_dict(), path)
    assert main(["study", "plan", name, "--output", str(workspace / "studies" / name)]) == 0, capsys.readouterr().err
    assert "preflight: data, weights and devices checked" in capsys.readouterr().out


def test_table1_plans_the_papers_19_teachers_per_dataset(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    for name in ("table1_pets", "table1_cifar100"):
        study = load_study(name, output=workspace / "studies" / name)
        preparations = study.preparations
        assert len(preparations) == 19
        finetuned = [p for p in preparations if p.config.model.init == "pretrained"]
        scratch = [p for p in preparations if p.config.model.init == "random"]
        assert len(finetuned) == 16 and len(scratch) == 3
        assert {p.config.model.name for p in scratch} == {"resnet50", "convnext_tiny", "regnety_064"}
        lengths = sorted({p.config.epochs for p in finetuned})
        assert lengths == ([20, 50, 200, 400] if name == "table1_pets" else [40, 100, 200, 400])
        vit = [p for p in finetuned if p.config.model.name.startswith("vit")]
        assert {(p.config.optimizer.lr, p.config.optimizer.weight_decay) for p in vit} == {(5e-5, 0.1)}
        assert len(study.runs) == 19 * 9 * 3 and "teachers" in study.axis_names


def test_table2_students_and_fig6_7_datasets(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    table2 = load_study("table2_student_init", output=workspace / "studies" / "t2")
    inits = {(r.spec.student.model.name, r.spec.student.model.init, r.spec.student.model.prepared)
             for r in table2.runs}
    assert len(inits) == 8 and len(table2.preparations) == 5
    fig67 = load_study("fig6_7_datasets", output=workspace / "studies" / "f67")
    assert len({r.spec.data.dataset for r in fig67.runs}) == 5 and len(fig67.preparations) == 6
    assert len(fig67.cohorts) == 6 * 3


def test_the_glue_example_plans_both_stages_with_the_models_in_the_hugging_face_cache(tmp_path):
    """glue_sst2 names hub models: with their configs in the local cache (offline, as a machine that
    has used them), plan checks them and leaves the GLUE data, not cached yet, to the run."""
    import subprocess
    import sys

    pytest.importorskip("transformers", reason="the text example needs the text extra: pip install 'kdtemp[text]'")
    from helpers.text import fake_hub_cache, hf_environment, tiny_bert

    bert = {**tiny_bert(vocab_size=30522), "max_position_embeddings": 512}
    home = fake_hub_cache(tmp_path / "hf", {"bert-base-uncased": bert, "google/bert_uncased_L-4_H-256_A-4": bert})
    env = hf_environment(home)
    done = subprocess.run([sys.executable, "-m", "kdtemp", "study", "plan", "glue_sst2", "--output",
                           str(tmp_path / "study")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "99 runs" in done.stdout and "stage prepare: 1 models" in done.stdout
    assert "preflight: data, weights and devices checked" in done.stdout
    study = load_study(examples()["glue_sst2"], output=tmp_path / "study")
    assert {run.spec.task for run in study.runs} == {"text_classification"}
    assert {run.spec.student.objective for run in study.runs} == {"kd", "ls_kd", "dist"}


def test_the_dolly_example_plans_both_stages_with_gpt2_in_the_hugging_face_cache(tmp_path, monkeypatch):
    """dolly_gpt2 names GPT-2 XL and GPT-2: with their configs and a tokenizer in the local cache
    (offline, as a machine that has used them) and MiniLLM's files in ./dolly, plan checks it all."""
    import shutil
    import subprocess
    import sys

    pytest.importorskip("transformers", reason="the language-model example needs the lm extra: pip install 'kdtemp[lm]'")
    from helpers.lm import tiny_gpt2, train_tokenizer, write_instructions
    from helpers.text import fake_hub_cache, hf_environment

    gpt2 = {**tiny_gpt2(vocab_size=50257), "n_positions": 1024}
    home = fake_hub_cache(tmp_path / "hf", {"gpt2-xl": gpt2, "gpt2": gpt2})
    tokenizer = train_tokenizer(tmp_path / "tokenizer")
    for name in ("gpt2-xl", "gpt2"):  # a tokenizer beside each config, as the hub has GPT-2's
        snapshot = next((home / "hub" / f"models--{name}" / "snapshots").iterdir())
        for file in tokenizer.iterdir():
            shutil.copy(file, snapshot / file.name)
    write_instructions(tmp_path / "dolly", extra_sets={"selfinst": 4, "unni": 4, "sni": 4})
    done = subprocess.run([sys.executable, "-m", "kdtemp", "study", "plan", "dolly_gpt2", "--output",
                           str(tmp_path / "study")], capture_output=True, text=True, env=hf_environment(home),
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "24 runs" in done.stdout and "stage prepare: 1 models" in done.stdout
    assert "evaluation test 12, selfinst 4, unni 4, sni 4" in done.stdout
    assert "preflight: data, weights and devices checked" in done.stdout
    monkeypatch.chdir(tmp_path)  # a packaged example's paths resolve against the current folder
    study = load_study("dolly_gpt2", output=tmp_path / "study")
    assert {run.spec.task for run in study.runs} == {"causal_lm"}
    assert {run.spec.student.objective for run in study.runs} == {"kd", "reverse_kl", "skew_kl"}


@pytest.mark.parametrize("name, models, runs", [
    ("dts_seqkd_opt", ("facebook/opt-13b", "facebook/opt-1.3b"), 6),
    ("gkd", ("gpt2-xl", "gpt2"), 12),
])
def test_the_seqkd_and_on_policy_examples_plan_with_their_models_in_the_cache(tmp_path, name, models, runs):
    """dts_seqkd_opt (the DTS paper's SeqKD run: the SFT'd teacher's responses) and gkd (on-policy, lmbda and
    JSD's beta) plan both stages against Dolly's files, with their models' configs and tokenizers cached."""
    import shutil
    import subprocess
    import sys

    pytest.importorskip("transformers", reason="the language-model examples need the lm extra: pip install 'kdtemp[lm]'")
    from helpers.lm import tiny_gpt2, train_tokenizer, write_instructions
    from helpers.text import fake_hub_cache, hf_environment

    opt = {"model_type": "opt", "vocab_size": 50272, "hidden_size": 32, "num_hidden_layers": 1, "ffn_dim": 64,
           "num_attention_heads": 2, "max_position_embeddings": 1024, "word_embed_proj_dim": 32}
    config = opt if name == "dts_seqkd_opt" else {**tiny_gpt2(vocab_size=50257), "n_positions": 1024}
    home = fake_hub_cache(tmp_path / "hf", {model: config for model in models})
    tokenizer = train_tokenizer(tmp_path / "tokenizer")
    for model in models:
        snapshot = next((home / "hub" / f"models--{model.replace('/', '--')}" / "snapshots").iterdir())
        for file in tokenizer.iterdir():
            shutil.copy(file, snapshot / file.name)
    write_instructions(tmp_path / "dolly")
    done = subprocess.run([sys.executable, "-m", "kdtemp", "study", "plan", name, "--output", str(tmp_path / "study")],
                          capture_output=True, text=True, env=hf_environment(home), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{runs} runs" in done.stdout and "stage prepare: 1 models" in done.stdout
    assert "preflight: data, weights and devices checked" in done.stdout
