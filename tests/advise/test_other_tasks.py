"""The advisor on a language model's store: its image-classification rules say where they were found,
LM practice enters with its source, and a difference measured on one seed is "no spread known", never
"more than the seed spread 0.00"; it does not override the rules."""

from kdtemp.advise import Setup, advise
from kdtemp.engine.results import RunResult
from kdtemp.study import Store


def lm_store(folder, seeds=(0,)):
    rows, results = [], []
    for t, value in ((1.0, 4.0), (2.0, 3.0), (4.0, 1.5)):
        for seed in seeds:
            run_id = f"kd-{t:g}-{seed}"
            config = {"task": "causal_lm", "data": {"dataset": "dolly"}, "teacher": {"name": "gpt2"}, "data_seed": 0,
                      "student": {"objective": "kd", "temperature": t, "temperature_policy": "fixed", "epochs": 1,
                                  "seed": seed, "optimizer": {"name": "adamw"}}}
            rows.append({"run_id": run_id, "cohort_id": "c", "position": len(rows), "label": "kd",
                         "cell": {"student.temperature": t}, "seed": seed, "config": config, "epochs": 1})
            curve = [{"epoch": 1, "train_loss": 1.0, "rouge_l": value + 0.01 * seed, "temperature": t}]
            results.append(RunResult.from_curve(curve, "rouge_l", "max", run_id=run_id, label="kd", status="done",
                                                error=None, epochs_done=1, seconds=1.0).__dict__)
    with Store(folder / "study.sqlite") as store:
        store.set_meta("run_ids", [r["run_id"] for r in rows])
        store.register(rows)
        for result in results:
            store.record(result)
    return folder


def test_one_seed_is_no_spread_known_and_overrides_nothing(tmp_path):
    advice = advise(Setup(), [lm_store(tmp_path)])
    text = advice.text()
    assert "from one seed: no spread known" in text and "seed spread 0.00" not in text
    assert advice.suggested == 4  # the rules' suggestion stands
    assert "found on image classification" in text and "they say nothing certain about causal_lm" in text
    assert "arXiv 2606.00306" in text and "reverse KL best at T = 1" in text


def test_several_seeds_do_override(tmp_path):
    advice = advise(Setup(), [lm_store(tmp_path, seeds=(0, 1, 2))])
    assert advice.suggested == 1 and "your own matching runs favour T = 1" in advice.reasons[0]
