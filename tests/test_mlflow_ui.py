"""Browse a finished sweep in the MLflow UI with headless Chromium.

A real server (mlflow/serve.sh) holds a sweep made with :class:`tune.tracking.SweepTracker`
(a parent run, four finished children with made-up objectives, three of them on the Pareto
front). Chromium, started by the test and driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: no port, no websocket package), loads

* the runs table filtered with ``tags.pareto = 'true'``: the parent row appears, and after
  expanding it the three front children do while the dominated one does not;
* the parent's artifact page ``.../runs/<parent>/artifacts/pareto.png``: the front files are
  listed, the Pareto plot image is loaded, and ``pareto.html`` opens in the viewer's frame;
* the parent's overview: it lists its four child runs;
* the experiment's first view in a fresh profile: the runs table (the experiment is tagged
  as model development), not MLflow 3's empty GenAI traces overview;
* ``pareto.html`` inside the viewer's frame draws one marker per front member, with no
  network: the browser resolves no host name but 127.0.0.1, so a page that fetched
  plotly.js from a CDN would stay blank;
* a child run's page: its objectives and the attack that produced them.

Screenshots go to ``tmp_path`` and, when ``TGO_SCREENSHOT_DIR`` is set, are copied there.
Needs Debian's ``chromium`` package (skipped with the reason when it is missing).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from test_mlflow_server import free_port, serve, stop

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-quic",
                  # no network: every host name but the server's fails to resolve
                  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                  # frames stay in the page's process, where DevTools can reach them
                  "--disable-site-isolation-trials",
                  "--disable-features=IsolateSandboxedIframes,site-per-process")
#: What produced the (made-up) robust accuracies, as a sweep logs it.
EVAL = {"eval_attack": "pgd,apgd", "eval_eps": 0.15, "eval_steps": 10, "eval_eot_samples": 4,
        "eval_description": "worst case of [PGD-10 (eps 0.15, step 0.0375, 1 restart) EOT-4, "
                            "APGD-10 (eps 0.15, 1 restart) EOT-4], noise on"}
WIDTH, HEIGHT = 1400, 1000
# (trial id, clean_acc, robust_acc): t00003 is dominated by t00001 (0.90 / 0.45)
TRIALS = (("t00000", 0.95, 0.30), ("t00001", 0.90, 0.45), ("t00002", 0.80, 0.60),
          ("t00003", 0.85, 0.40))


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return None


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed "
                                 "(Debian: apt-get install -y chromium)")]


class Chromium:
    """Headless Chromium driven with the DevTools protocol over ``--remote-debugging-pipe``.

    Chromium reads JSON commands, each ended by a NUL byte, on its fd 3 and answers on fd 4.
    """

    def __init__(self, binary: str, profile: Path) -> None:
        commands_r, self._commands = os.pipe()
        self._answers, answers_w = os.pipe()
        # the child's ends move above fd 10 so that "3<&N 4>&M" cannot clobber one another
        ends = []
        for fd in (commands_r, answers_w):
            ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD, 10))
            os.close(fd)
        args = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-pipe", "about:blank"]
        self.log = profile.parent / "chromium.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", f'exec "$@" 3<&{ends[0]} 4>&{ends[1]} {ends[0]}<&- {ends[1]}>&-',
                 "chromium", *args],
                pass_fds=ends, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True)
        for fd in ends:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def call(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        """Send one command (to the page session once :meth:`open_page` ran); its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                    raise TimeoutError(f"chromium did not answer {method} in {timeout}s")
                chunk = os.read(self._answers, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium exited; see {self.log}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next_id:  # anything else is an event
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def open_page(self) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self) -> str:
        return self.js("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, predicate, what: str, timeout: float = 60.0):
        """Poll ``predicate(self)`` until it returns something truthy; that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; the page "
                                     f"shows:\n{self.text()[:3000]}")
            time.sleep(0.25)

    def wait_for_text(self, *needles: str, timeout: float = 60.0) -> str:
        """The page's text once it contains every one of ``needles``."""
        def text_with_all(browser: "Chromium") -> str | None:
            text = browser.text()
            return text if all(n in text for n in needles) else None

        return self.wait_for(text_with_all, f"the text {needles!r}", timeout)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
            self.proc.wait(timeout=15)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: pgid == pid
            self.proc.wait()
        for fd in (self._commands, self._answers):
            os.close(fd)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A finished sweep on a real server: dict with url, experiment_id, parent, run names."""
    from tune.tracking import SweepTracker

    data_dir = tmp_path_factory.mktemp("mlflow-ui-server")
    port = free_port()
    started = serve(data_dir, port)
    try:
        assert started.returncode == 0, f"serve.sh: {started.stdout}\n{started.stderr}"
        url = f"http://127.0.0.1:{port}"
        tracker = SweepTracker(url, "ui-browse", "ui-sweep", "feedc0de",
                               {"space": {"margin_weight": {"type": "uniform", "low": 0.0,
                                                            "high": 1.0}}},
                               git_commit="0" * 40,
                               objectives=[("clean_acc", "max"), ("robust_acc", "max")])
        parent = tracker.start()
        names, runs = {}, {}
        for i, (trial, clean, robust) in enumerate(TRIALS):
            run = tracker.child_run(trial, {"margin_weight": 0.1 * (i + 1), "margin": 0.5,
                                            "noise_scale": 0.2, "timesteps": 4})
            tracker.log_epoch(run, {"val_clean_acc": clean - 0.05}, epoch=1)
            tracker.finish_trial(run, {"epoch": 2, "clean_acc": clean, "robust_acc": robust,
                                       **EVAL}, "finished")
            names[trial] = tracker.client.get_run(run).info.run_name
            runs[trial] = run
        front = tracker.update_front(tracker.finished_records())
        tracker.finish()
        assert sorted(r["trial_id"] for r in front) == ["t00000", "t00001", "t00002"]
        yield {"url": url, "experiment_id": tracker.experiment_id, "parent": parent,
               "names": names, "front": [names[t] for t in ("t00000", "t00001", "t00002")],
               "dominated": names["t00003"], "runs": runs}
    finally:
        stopped = stop(data_dir)
        assert stopped.returncode == 0, f"stop.sh: {stopped.stdout}\n{stopped.stderr}"


@pytest.fixture
def browser(tmp_path):
    chrome = Chromium(_chromium(), tmp_path / "chromium-profile")
    try:
        chrome.open_page()
        yield chrome
    finally:
        chrome.close()


def _keep(shot: Path) -> None:
    """Check the screenshot is a real PNG and copy it to $TGO_SCREENSHOT_DIR when set."""
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, shot
    if folder := os.environ.get("TGO_SCREENSHOT_DIR"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(folder) / shot.name)


# ----------------------------------------------------------------------------- tests


def test_pareto_filter_lists_the_front_children(sweep, browser, tmp_path):
    experiment = f"{sweep['url']}/#/experiments/{sweep['experiment_id']}"
    search = urllib.parse.quote("tags.pareto = 'true'", safe="")
    browser.goto(f"{experiment}/runs?searchFilter={search}")
    browser.wait_for_text("ui-sweep", "matching runs")  # the table shows the parent row
    # The matching children are nested under their parent: open its row.
    anchor = f'[role=gridcell] a[href$="/runs/{sweep["parent"]}"]'
    clicked = browser.js(f"""(() => {{
        const link = document.querySelector('{anchor}');
        const button = link && link.closest('[role=gridcell]').querySelector('button');
        if (!button) return false;
        button.click();
        return true;
    }})()""")
    assert clicked, "no expand button in the parent run's row"
    text = browser.wait_for_text(*sweep["front"])
    assert sweep["dominated"] not in text  # the filter left the dominated trial out
    assert "tags.pareto = 'true'" in browser.js(
        "Array.from(document.querySelectorAll('input')).map(i => i.value).join('|')")
    _keep(browser.screenshot(tmp_path / "mlflow-ui-pareto-front.png"))


def test_parent_artifacts_show_the_pareto_plot(sweep, browser, tmp_path):
    run_page = f"{sweep['url']}/#/experiments/{sweep['experiment_id']}/runs/{sweep['parent']}"
    browser.goto(f"{run_page}/artifacts/pareto.png")
    text = browser.wait_for_text("pareto.csv", "pareto.html", "pareto.json", "pareto.png",
                                 "spec.yaml")
    assert f"mlflow-artifacts:/{sweep['experiment_id']}/{sweep['parent']}/artifacts/pareto.png" \
        in text
    width = browser.wait_for(lambda b: b.js(
        """(() => { const img = document.querySelector('img[alt="pareto.png"]');
                    return img && img.complete ? img.naturalWidth : 0; })()"""),
        "the Pareto plot image")
    assert width >= 300  # matplotlib's figure, not a broken-image icon
    _keep(browser.screenshot(tmp_path / "mlflow-ui-pareto-plot.png"))

    # pareto.html (plotly) opens in the viewer's sandboxed frame
    assert browser.js("""(() => {
        const entry = Array.from(document.querySelectorAll('*')).find(e => Array.from(
            e.childNodes).some(n => n.nodeType === 3 && n.textContent.trim() === 'pareto.html'));
        if (entry) entry.click();
        return Boolean(entry);
    })()"""), "no pareto.html entry to click"
    browser.wait_for_text(f"{sweep['parent']}/artifacts/pareto.html")
    frame = browser.wait_for(lambda b: b.js(
        """(() => { const f = document.querySelector('iframe');
                    return f && f.offsetWidth > 0 ? [f.offsetWidth, f.getAttribute('sandbox')]
                                                  : null; })()"""), "the pareto.html frame")
    assert frame[0] >= 300 and "allow-scripts" in frame[1]


def test_parent_overview_lists_its_children(sweep, browser):
    browser.goto(f"{sweep['url']}/#/experiments/{sweep['experiment_id']}/runs/"
                 f"{sweep['parent']}")
    text = browser.wait_for_text("Child runs", *sweep["names"].values())
    assert "hypervolume" in text and "tgo.kind" in text


def test_the_experiment_opens_on_its_runs(sweep, browser, tmp_path):
    """A fresh profile at the address a sweep prints opens the runs table, not MLflow 3's
    empty traces overview (which the bare address shows: the UI ignores the experiment's
    mlflow.experimentKind tag and defaults to its GenAI views)."""
    from tune.tracking.urls import experiment_url

    exp = get_experiment(sweep)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    browser.goto(experiment_url(sweep["url"], sweep["experiment_id"]))
    text = browser.wait_for_text("ui-sweep")       # the parent run's row
    assert "No data available" not in text and "No traces" not in text
    _keep(browser.screenshot(tmp_path / "mlflow-ui-experiment.png"))


def get_experiment(sweep):
    from mlflow import MlflowClient
    return MlflowClient(sweep["url"]).get_experiment(sweep["experiment_id"])


def _frame_eval(browser: Chromium, expression: str):
    """Evaluate ``expression`` in the page's first child frame (the artifact viewer's)."""
    tree = browser.call("Page.getFrameTree")["frameTree"]
    children = tree.get("childFrames") or []
    if not children:
        return None
    frame = children[0]["frame"]["id"]
    try:   # the frame may still be loading (or be replaced): the caller polls again
        world = browser.call("Page.createIsolatedWorld", {"frameId": frame})["executionContextId"]
        result = browser.call("Runtime.evaluate", {"expression": expression,
                                                   "contextId": world, "returnByValue": True})
    except RuntimeError:
        return None
    return result["result"].get("value")


def test_the_front_plot_draws_one_marker_per_member_offline(sweep, browser, tmp_path):
    from tune.tracking.urls import run_url

    browser.goto(run_url(sweep["url"], sweep["experiment_id"], sweep["parent"], "pareto.html"))
    browser.call("Page.enable")
    # plotly draws one <g class="trace scatter"> per trace: staircase, dominated, front
    counts = browser.wait_for(lambda b: _frame_eval(b, """(() => {
        const traces = document.querySelectorAll('.scatterlayer .trace');
        if (traces.length < 3) return null;
        return Array.from(traces).map(t => t.querySelectorAll('path.point').length);
    })()"""), "the Pareto plot drawn inside the viewer's frame", timeout=90)
    assert counts == [0, 1, 3]      # no markers on the line, 1 dominated, 3 front members
    legend = _frame_eval(browser, "document.querySelector('.legend').textContent")
    assert "Pareto front" in legend
    _keep(browser.screenshot(tmp_path / "mlflow-ui-pareto-html.png"))


def test_a_child_run_shows_its_objectives_and_attack(sweep, browser):
    from tune.tracking.urls import run_url

    browser.goto(run_url(sweep["url"], sweep["experiment_id"], sweep["runs"]["t00001"]))
    text = browser.wait_for_text("clean_acc", "robust_acc", "eval_description")
    assert "0.9" in text and "0.45" in text             # its objective values
    assert EVAL["eval_description"] in text             # and what measured robust_acc
