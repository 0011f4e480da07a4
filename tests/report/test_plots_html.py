"""The figures and report.html: files written, self-contained, the pick shown, text escaped."""

import html as stdhtml
import re

from ose import latency as lat
from ose.report import html, plots, results

# Any URL a browser would fetch on its own: src/href/url() pointing off the page.
REMOTE = re.compile(r"""(src|href)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//|@import""", re.I)


def pick_text(doc):
    return plots.arch_text(doc["best"], results.parameter_names(doc))


def test_report_with_latency_writes_every_file(tmp_path, study_doc, latency_doc):
    paths = html.write_html(tmp_path, study_doc, latency_doc)
    names = [p.name for p in paths]
    assert names == ["report.html", "pareto_params.png", "pareto_ops.png", "latency.png"]
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000
    for p in paths[1:]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_is_self_contained_and_shows_the_pick(tmp_path, study_doc, latency_doc):
    page = html.write_html(tmp_path, study_doc, latency_doc)[0].read_text()
    assert not REMOTE.search(page)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page  # nothing runs; the failure message below is escaped text
    assert page.count("data:image/png;base64,") == 3
    assert f"ξ* = ⟨{pick_text(study_doc)}⟩" in page
    for rho in lat.correlations(latency_doc).values():
        assert f"{rho:.3f}" in page
    assert "Measured speed-up of ξ* over T" in page


def test_failed_evaluations_are_listed_with_their_reason_escaped(tmp_path, study_doc):
    failure = next(r["message"] for r in study_doc["evaluations"] if r["status"] != "ok")
    assert "<script>" in failure
    page = html.write_html(tmp_path, study_doc)[0].read_text()
    assert "Failed evaluations (1)" in page
    assert stdhtml.escape(failure) in page and failure not in page


def test_report_without_latency_has_no_latency_figure(tmp_path, study_doc):
    paths = html.write_html(tmp_path, study_doc)
    assert [p.name for p in paths] == ["report.html", "pareto_params.png", "pareto_ops.png"]
    page = paths[0].read_text()
    assert "Spearman" not in page and "|Ξ|" in page and "fptas" in page


def test_report_when_nothing_finished(tmp_path, study_doc):
    failed = [r for r in study_doc["evaluations"] if r["status"] != "ok"]
    doc = {**study_doc, "evaluations": failed, "best": None, "pareto": []}
    paths = html.write_html(tmp_path, doc)
    assert [p.name for p in paths] == ["report.html"]
    assert "no architecture was chosen" in paths[0].read_text()


def test_pick_not_measured_still_renders(tmp_path, study_doc, latency_doc):
    others = [a for a in latency_doc["architectures"] if any(a[k] != study_doc["best"][k] for k in "DAHI")]
    page = html.write_html(tmp_path, study_doc, {**latency_doc, "architectures": others})[0].read_text()
    assert "Spearman" in page and "Measured speed-up" not in page


def test_settings_show_the_spread_of_t_latency(tmp_path, study_doc, latency_doc):
    top = latency_doc["maximum_point"]
    samples = {b: [0.5 * v, v, 1.5 * v] for b, v in top["latency"].items()}
    page = html.write_html(tmp_path, study_doc, {**latency_doc, "maximum_point": {**top, "samples": samples}})[0]
    ms = 1000 * top["latency"]["32"]
    assert f"batch 32: median of 3 spread over the run, {0.5 * ms:.3g}–{1.5 * ms:.3g} ms" in page.read_text()
