"""The HTML report as a researcher sees it: the toy paper's smoke run, `snakemake --report`,
rendered by a real headless browser (Debian's chromium, installed here when missing)."""

import base64
import html
import os
import re
import shutil
import subprocess

import pytest
from conftest import snakemake

pytestmark = pytest.mark.e2e

INSTALL_TIMEOUT_S = 600
BROWSER_TIMEOUT_S = 120
# After the report's page has loaded, open its first PNG figure the way its view button
# does, and record whether the browser decoded the embedded image.
OPEN_FIGURE = """
<script>
window.addEventListener("load", () => setTimeout(() => {
  const path = Object.keys(results).find((p) => results[p].mime_type === "image/png");
  app.setView({navbarMode: "resultinfo", resultPath: path, content: "img",
               contentPath: results[path].data_uri});
  setTimeout(() => {
    const img = document.querySelector('img[src^="data:image/png"]');
    const ok = img !== null && img.complete && img.naturalWidth > 0;
    document.body.setAttribute("data-figure", ok ? "loaded" : "missing");
  }, 1000);
}, 500));
</script>
"""


def browser() -> str:
    """The chromium executable; installs Debian's package when absent, or skips saying why."""
    found = shutil.which("chromium")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("headless Chromium is absent and apt-get as root is not available here")
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            subprocess.run(cmd, capture_output=True, timeout=INSTALL_TIMEOUT_S, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"headless Chromium is absent and could not be installed: {err}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no `chromium` is on PATH")
    return found


def render(chromium: str, page, *args) -> str:
    """Run headless chromium on ``page`` (JavaScript given time to run); its stdout."""
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1400,1000",
            "--virtual-time-budget=5000",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def visible_text(dom: str) -> str:
    """The text a reader sees in a dumped DOM (scripts, which hold the raw data, left out)."""
    shown = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", shown))


def test_report_renders_in_a_browser(toy_root):
    chromium = browser()
    smoke = ("-c1", "--config", "profile=smoke")
    ran = snakemake(*smoke, cwd=toy_root)
    assert ran.returncode == 0, ran.stderr[-3000:]
    page = toy_root / "report.html"
    made = snakemake(*smoke, "--report", page, cwd=toy_root)
    assert made.returncode == 0, made.stderr[-3000:]

    shot = toy_root / "front.png"
    render(chromium, page, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000, "the screenshot of the front page is blank"
    front = render(chromium, page, "--dump-dom")
    text = visible_text(front)
    assert "sltrepro: reproductions of singular learning theory papers" in text
    assert "System Message" not in text, "docutils reported an error on the front page"
    # the claims table, with the checks apart, from the toy's claims.yaml and its metrics
    assert re.search(r"Profile smoke:\s+1 of 1 claims pass; 1 of 1 checks pass", text)
    claims, checks = text.split("Harness checks (of our code, not of the paper)")
    assert re.search(r"mean_near_zero\s+✔ pass\s+-0\.\d+\s+0 ± 2", claims)
    assert "count_matches" in checks and "count_matches" not in claims

    viewer = toy_root / "report_figure.html"
    # the page's last </body> (its scripts hold others)
    head, body_end, tail = page.read_text().rpartition("</body>")
    viewer.write_text(head + OPEN_FIGURE + body_end + tail)
    opened = render(chromium, viewer, "--dump-dom")
    assert 'data-figure="loaded"' in opened, "the browser did not load the report's figure"
    assert "Histogram of the toy paper's seeded Gaussian draws" in visible_text(opened)
    render(chromium, viewer, f"--screenshot={toy_root / 'figure.png'}")

    # the Claims view: the paper's full table, embedded in the report as an HTML page
    embedded = re.search(r'"data:text/html;[^"]*;base64,([^"]+)"', page.read_text())
    assert embedded, "the claims page is not embedded in the report"
    claims_page = base64.b64decode(embedded.group(1)).decode()
    assert claims_page.index("<h2>Claims</h2>") < claims_page.index("mean_near_zero")
    assert claims_page.index("<h2>Harness checks</h2>") < claims_page.index("count_matches")
    assert "The mean of standard normal draws is near zero." in claims_page
