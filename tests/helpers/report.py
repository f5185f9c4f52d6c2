"""For the report tests: run records as the store holds them, and a headless browser."""

import shutil


def run(index, objective, temperature, policy="fixed", kd_weight=None, seed=0):
    student = {"objective": objective, "temperature": temperature, "temperature_policy": policy, "epochs": 2,
               "kd_weight": kd_weight}
    return {"run_id": str(index), "status": "done", "seed": seed, "final_top1": 50.0 + index, "best_top1": 60.0,
            "curve": [], "config": {"student": student}}


def find_browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def rendered_figures(browser: str, html, profile) -> set[str]:
    """The ids of the figures a report page shows once Chromium has loaded it (its script lists them)."""
    import subprocess

    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=5000", "--dump-dom"]
    dom = subprocess.run(flags + [html.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    return set(dom.stdout.split('data-rendered="', 1)[1].split('"', 1)[0].split())


def stored_run(run_id: str, config: dict, temperature: float, seed: int, metrics: dict, primary: str = "top1",
               position: int = 0, label: str | None = None, **result) -> tuple[dict, dict]:
    """A run's store registration row and its one-epoch result (``result``: more ``RunResult`` fields)."""
    from kdtemp.engine.results import RunResult

    row = {"run_id": run_id, "cohort_id": f"c{seed}", "position": position, "label": label or run_id,
           "cell": {"student.temperature": temperature}, "seed": seed, "config": config, "epochs": 1}
    if "evaluation" in result:
        row["evaluation"] = result.pop("wanted", result["evaluation"])
    curve = [{"epoch": 1, "train_loss": 1.0, **metrics, "temperature": temperature, "lr": 0.1}]
    outcome = RunResult.from_curve(curve, primary, "max", run_id=run_id, label=label or run_id, status="done",
                                   error=None, epochs_done=1, seconds=1.0, **result)
    return row, outcome.__dict__


def write_store(path, runs: list[tuple[dict, dict]]):
    """A study store at ``path`` holding ``runs`` (:func:`stored_run`), the study's runs in that order."""
    from kdtemp.study import Store

    with Store(path) as store:
        store.set_meta("run_ids", [row["run_id"] for row, _ in runs])
        store.register([row for row, _ in runs])
        for _, result in runs:
            store.record(result)
    return path
