"""The explorer notebook in a real JupyterLab, in a real headless browser: run all cells, the
widgets render and show a stylized image with its time and style loss; a screenshot is kept.

Needs Chromium from the system packages and playwright (``pip install -e '.[browser]'``); skipped
where either is missing (CI machines have no browser). ``REPRO_LAB_SCREENSHOT=path.png`` keeps
the screenshot (default: build/lab-explore.png); ``REPRO_LAB_RUNS=runs`` shows the runs of a real
``runs/`` folder rather than freshly trained smoke ones.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from repro import paths

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = next((p for p in (os.environ.get("REPRO_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser"), shutil.which("google-chrome")) if p), None)
# skipped here, at collection, before a JupyterLab is started for nothing
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[browser]'")
if CHROMIUM is None:
    pytest.skip("no Chromium (apt install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a copy of the explorer notebook (autosave never touches the source)."""
    shutil.copy(paths.NOTEBOOKS / "explore.ipynb", tmp_path / "explore.ipynb")
    port, token = _free_port(), "repro-browser-test"
    # REPRO_LAB_RUNS=runs: the explorer on a real runs/ folder (after make figures) instead
    env = {**os.environ, "REPRO_RUNS": os.environ.get("REPRO_LAB_RUNS", str(tmp_path / "runs"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--allow-root",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start in 60 s")
        yield f"{url}/lab/tree/explore.ipynb?token={token}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_explorer_renders_its_widgets_in_jupyterlab(lab, data_ready):
    shot = os.environ.get("REPRO_LAB_SCREENSHOT", str(paths.ROOT / "build" / "lab-explore.png"))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(lab)
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        page.click(".jp-Notebook")
        page.keyboard.press("Escape")  # command mode; then the menu's "Run All Cells"
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        # the widget area's caption: "<run> ... NN ms | style loss ..." once a render is shown
        caption = page.locator(".jupyter-widgets.widget-html").filter(has_text="style loss").first
        caption.wait_for(timeout=480_000)  # smoke runs train first: minutes on busy cores
        image = page.locator(".jupyter-widgets.widget-image").first
        image.wait_for(timeout=30_000)
        width = image.evaluate("img => img.naturalWidth")
        text = caption.inner_text()
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=240_000)
        image.scroll_into_view_if_needed()
        os.makedirs(os.path.dirname(shot), exist_ok=True)
        page.screenshot(path=shot, full_page=True)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        tracebacks = [t for t in errors.all_inner_texts() if "Error" in t]
        browser.close()
    assert width >= 64, "the result image did not render"
    assert " ms | style loss " in text, text
    assert not tracebacks, tracebacks[0][-500:]
