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
