"""A --speed latency study explains W by the factors W was computed from: lat/T, not i/T.

Every check recomputes W from the numbers a reader sees; 4 significant digits reproduce it to
well within 0.5%.
"""

import csv
import html as stdhtml
import re

import pytest

from ose.report import html, results

NUMBER = r"(-?[\d.]+(?:e[-+]?\d+)?)"


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def table(text: str) -> list[dict]:
    """The rows of ``text_table`` output (until the first line that is not one of them)."""
    head, *lines = text.splitlines()
    columns = head.split()
    return [dict(zip(columns, line.split())) for line in lines if len(line.split()) == len(columns)]


def w_from(p_ratio: float, speed_ratio: float, error: float) -> float:
    return (1 - p_ratio) * (1 - speed_ratio) / error


def test_summary_shows_lat_over_t_that_reproduces_w(latency_study):
    doc, _ = latency_study
    t_seconds = doc["settings"]["speed"]["T_seconds"]
    text = results.summary(doc)
    rows = table(text)
    assert rows and "lat/T" in rows[0] and "i/T" not in rows[0]
    ranked = sorted(results.finished(doc["evaluations"]), key=lambda r: -r["w"])
    for row, record in zip(rows, ranked):
        assert row["lat/T"] == f"{record['latency'] / t_seconds:.4g}"
        assert number(row["W"]) == pytest.approx(w_from(number(row["p/T"]), number(row["lat/T"]),
                                                         number(row["error"])), rel=5e-3)
    assert f"T's {1000 * t_seconds:.3g} ms" in text


def test_pick_line_gives_the_latency_factor(latency_study):
    doc, _ = latency_study
    pick, speed = doc["best"], doc["settings"]["speed"]
    line = results.pick_line(doc)
    found = re.search(rf"W = {NUMBER}  ê = {NUMBER}  p/T = {NUMBER}  lat/T = {NUMBER}", line)
    assert found and "i/T" not in line
    w, error, p_ratio, lat_ratio = map(float, found.groups())
    assert lat_ratio == pytest.approx(pick["latency"] / speed["T_seconds"], abs=5e-4)
    assert w == pytest.approx(w_from(p_ratio, lat_ratio, error), rel=5e-3)
    assert f"{1000 * pick['latency']:.3g} ms / {1000 * speed['T_seconds']:.3g} ms at batch 1" in line


def test_ops_study_keeps_i_over_t(study_doc):
    assert "i/T" in table(results.summary(study_doc))[0] and "lat/T" not in results.summary(study_doc)
    assert re.search(r"p/T = [\d.]+  i/T = [\d.]+$", results.pick_line(study_doc))


def page_text(path) -> str:
    return stdhtml.unescape(re.sub(r"<[^>]+>", " ", path.read_text()))


def test_html_why_reproduces_w_from_the_latency_factors(tmp_path, latency_study):
    doc, measured = latency_study
    pick, t_seconds = doc["best"], doc["settings"]["speed"]["T_seconds"]
    text = page_text(html.write_html(tmp_path, doc, measured)[0])
    why = re.search(rf"W = \(1 − p/T\)·\(1 − lat/T\) / ê = \(1 − {NUMBER}\)·\(1 − {NUMBER}\) / {NUMBER} = {NUMBER}\.",
                    text)
    assert why, "the why sentence does not give W from lat/T"
    p_ratio, lat_ratio, error, w = map(float, why.groups())
    assert lat_ratio == pytest.approx(pick["latency"] / t_seconds, rel=1e-3)
    assert lat_ratio != pytest.approx(pick["ops"] / doc["maximum_point"]["ops"], rel=0.1)  # the fixture keeps them apart
    assert w == pytest.approx(pick["w"], rel=1e-3)
    assert w_from(p_ratio, lat_ratio, error) == pytest.approx(pick["w"], rel=5e-3)
    assert f"{1000 * pick['latency']:.4g} ms, over T's, {1000 * t_seconds:.4g} ms" in text


def test_html_comparison_and_ranked_table_show_the_latency_w_used(tmp_path, latency_study):
    doc, measured = latency_study
    pick, t_seconds = doc["best"], doc["settings"]["speed"]["T_seconds"]
    page = html.write_html(tmp_path, doc, measured)[0].read_text()
    row = re.search(r"<tr><td>lat: latency W uses, ms at batch 1</td>(.*?)</tr>", page)
    assert row
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
    assert cells == [f"{1000 * pick['latency']:.4g}", f"{1000 * t_seconds:.4g}", f"{pick['latency'] / t_seconds:.4g}"]
    # latency.json's batch-1 row is the measurement W used: shown once; batch 32 is not W's and stays.
    assert "measured latency, ms at batch 1<" not in page and "measured latency, ms at batch 32<" in page
    ranked = page[page.index("id='evaluations'"):]
    head = re.findall(r"<th>([^<]*)</th>", ranked[:ranked.index("</thead>")])
    assert {"latency (ms)", "lat/T", "W"} <= set(head)
    first = re.findall(r"<td[^>]*>([^<]*)</td>", ranked[ranked.index("<tbody>"):ranked.index("</tr>",
                                                                                             ranked.index("<tbody>"))])
    cells = dict(zip(head, first))
    assert cells["latency (ms)"] == f"{1000 * pick['latency']:.4g}"
    assert number(cells["W"]) == pytest.approx(w_from(number(cells["p/T"]), number(cells["lat/T"]),
                                                      number(cells["ê"])), rel=5e-3)


def test_html_of_an_ops_study_has_no_latency_factor(tmp_path, study_doc, latency_doc):
    page = page_text(html.write_html(tmp_path, study_doc, latency_doc)[0])
    assert "W = (1 − p/T)·(1 − i/T) / ê" in page
    assert "lat/T" not in page and "latency W uses" not in page and "measured latency, ms at batch 1" in page


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_files_have_the_latency_column(tmp_path, latency_study, study_doc):
    doc, _ = latency_study
    results.write_outputs(tmp_path / "lat", doc)
    rows = read_csv(tmp_path / "lat" / "results.csv")
    assert [float(r["latency"]) if r["latency"] else None for r in rows] == \
        [r.get("latency") for r in doc["evaluations"]]
    front = read_csv(tmp_path / "lat" / "pareto.csv")
    assert front and [float(r["latency"]) for r in front] == [r["latency"] for r in doc["pareto"]]
    results.write_outputs(tmp_path / "ops", study_doc)
    for name in ("results.csv", "pareto.csv"):
        assert {r["latency"] for r in read_csv(tmp_path / "ops" / name)} == {""}
