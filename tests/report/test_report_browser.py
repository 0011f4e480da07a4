"""report.html in a real browser: headless Chromium renders it with no console message, no
network request, and the chosen architecture in the DOM; a screenshot shows something.

Skipped only where no Chromium exists outside CI; under CI=true a missing browser fails
(.ci/run installs Debian's ``chromium``).
"""

import json
import os
import re
import shutil
import struct
import subprocess

import pytest

from ose.report import html, plots, results

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Quiet the browser's own background traffic and resolve no host at all: nothing leaves the machine.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--host-resolver-rules=MAP * ~NOTFOUND"]
CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)")  # what --enable-logging=stderr prints for console.*


@pytest.fixture(scope="module")
def chromium():
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no chromium binary in CI: .ci/run should have installed Debian's chromium")
        pytest.skip("no chromium binary (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory, study_doc, latency_doc):
    return html.write_html(tmp_path_factory.mktemp("report"), study_doc, latency_doc)[0]


def browse(chromium, tmp_path, page, *args):
    """Open ``page`` in headless Chromium; (stdout, console messages, URLs the page requested off-file)."""
    netlog = tmp_path / "net.json"
    cmd = [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           f"--log-net-log={netlog}", *args, page.as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-2000:]
    console = [m.group(1) for m in CONSOLE.finditer(run.stderr)]
    return run.stdout, console, page_requests(netlog)


def page_requests(netlog):
    """URLs other than file: and data: that the page itself asked for (its requests carry a file:// key)."""
    events = json.loads(netlog.read_text())["events"]
    urls = {e["params"]["url"] for e in events
            if "url" in e.get("params", {}) and "file://" in str(e["params"].get("network_isolation_key", ""))}
    return sorted(u for u in urls if not u.startswith(("file:", "data:")))


def test_checks_catch_console_errors_and_remote_requests(chromium, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p>x</p><img src='https://example.invalid/a.png'>"
                   "<script>console.error('deliberate'); throw new Error('boom')</script>")
    _, console, requests = browse(chromium, tmp_path, bad, "--dump-dom")
    assert any("deliberate" in m for m in console) and any("Uncaught Error: boom" in m for m in console)
    assert requests == ["https://example.invalid/a.png"]


def test_report_renders_clean_with_the_pick_in_the_dom(chromium, tmp_path, report, study_doc):
    dom, console, requests = browse(chromium, tmp_path, report, "--dump-dom")
    assert console == [] and requests == []
    pick = plots.arch_text(study_doc["best"], results.parameter_names(study_doc))
    shown = re.search(r'id="pick-arch"[^>]*>([^<]*)<', dom)
    assert shown and shown.group(1) == f"ξ* = ⟨{pick}⟩"
    assert dom.count("<img") == 3 and "Evaluations ranked by W" in dom


def test_report_screenshot(chromium, tmp_path, report):
    shot = tmp_path / "report.png"
    browse(chromium, tmp_path, report, f"--screenshot={shot}", "--window-size=1280,2000")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2000)
    assert len(data) > 50_000  # a blank or near-blank page compresses to a few kB
