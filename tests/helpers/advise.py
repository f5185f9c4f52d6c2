"""Study stores of finished fixed-T KD runs, written directly, for the advisor's tests."""

from pathlib import Path

from kdtemp.study.store import Store


def kd_store(path: Path, cells: dict, name: str = "past", epochs: int = 64, lr: float | None = None) -> Path:
    """A store with finished fixed-T KD runs: ``cells[(dataset, teacher, T)]`` or, with rows
    that differ in learning rate, ``cells[(dataset, teacher, T, lr)]`` = [top-1 per seed]."""
    rows, results = [], []
    for key, values in cells.items():
        dataset, teacher, t, row_lr = (*key, lr)[:4]
        optimizer = {"name": "adamw"} | ({"lr": row_lr} if row_lr is not None else {})
        for seed, value in enumerate(values):
            run_id = "-".join(str(k) for k in key) + f"-{seed}"
            config = {"data": {"dataset": dataset}, "teacher": {"name": teacher}, "data_seed": seed,
                      "student": {"objective": "kd", "temperature": float(t), "temperature_policy": "fixed",
                                  "epochs": epochs, "optimizer": optimizer, "seed": seed}}
            rows.append({"run_id": run_id, "cohort_id": "c", "position": len(rows), "label": "kd", "cell": {},
                         "seed": seed, "config": config, "epochs": epochs})
            results.append({"run_id": run_id, "status": "done", "epochs_done": epochs, "final_top1": value,
                            "seconds": 1.0, "best_top1": value})
    path.mkdir(parents=True, exist_ok=True)
    with Store(path / "study.sqlite") as store:
        store.set_meta("name", name)
        store.register(rows)
        for result in results:
            store.record(result)
    return path
