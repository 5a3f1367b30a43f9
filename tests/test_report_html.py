"""report.html opens in a real browser: headless Chromium (Debian's `chromium` package; .ci/run
installs it). Without it the test skips locally and fails under CI (CI=true)."""

import os
import re
import shutil
import subprocess

import pytest

from bench.report import build
from tests.report_records import scaling_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000"]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed; CI must install Debian's `chromium` package (.ci/run does)")
        pytest.skip("chromium not installed (apt-get install chromium); this test fails instead under CI=true")
    return CHROMIUM


def _chromium(browser, tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    build.write([scaling_run(root)], root / "out", formats=("html",))
    return root / "out" / "report.html"


def test_report_html_is_self_contained(html):
    text = html.read_text()
    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "<script" not in text


def test_report_html_renders_the_table_in_chromium(browser, html, tmp_path):
    dom = _chromium(browser, tmp_path, "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    table = re.search(r'<table id="results">(.*?)</table>', dom.stdout, re.S).group(1)
    assert len(re.findall(r"<tr", table)) == 1 + 9  # header + every case, the failed one included
    assert "rin_a" in table and "adm_b" in table and "failed" in table and "†" in table
    assert len(re.findall(r"<img ", dom.stdout)) == 5

    shot = tmp_path / "shot.png"
    run = _chromium(browser, tmp_path, f"--screenshot={shot}", html.as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1000, 1400)
    assert pixels.std() > 0.05  # not a blank page: text, rules and table on white
    dark = (pixels.mean(axis=2) < 0.5).mean()
    assert 0.005 < dark < 0.5


MEASURE = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "measured";
  const tables = [...document.querySelectorAll("table")].map(t => [t.id, Math.ceil(t.getBoundingClientRect().right)]);
  out.textContent = JSON.stringify({inner: window.innerWidth, scroll: document.documentElement.scrollWidth, tables});
  document.body.appendChild(out);
});
</script></body>"""


def test_mixed_suite_report_fits_1400px_without_horizontal_scroll(browser, tmp_path):
    """The done-when of issue 25: the default columns of a mixed suite's report (several
    architectures, a trained and an untrained model, a quality-vs-NFE sweep) fit a 1400 px window."""
    import json

    from tests.report_records import mixed_run

    build.write([mixed_run(tmp_path)], tmp_path / "out", formats=("html",))
    page = tmp_path / "measure.html"  # a copy with a measuring script; the report itself has none
    page.write_text((tmp_path / "out" / "report.html").read_text().replace("</body>", MEASURE))
    dom = _chromium(browser, tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    measured = json.loads(re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.S).group(1).replace("&quot;", '"'))
    ids = [t[0] for t in measured["tables"]]
    assert "results" in ids and "quality" in ids
    assert measured["inner"] == 1400
    assert measured["scroll"] <= measured["inner"], measured  # no horizontal scroll
    assert all(right <= measured["inner"] for _, right in measured["tables"]), measured
