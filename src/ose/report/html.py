"""report.html: one self-contained page about an extraction, readable offline.

The page makes no network request: no script, no external stylesheet, font or image. The
figures are PNGs embedded as base64 data URIs, the CSS is inline, and every piece of text
from the document is escaped with ``html.escape``.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .. import latency as lat
from . import plots, results

REPORT_FILE = "report.html"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430;
       max-width: 1280px; margin: 2em auto; padding: 0 1.5em; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 2px solid #dde3ea; padding-bottom: 0.2em; margin-top: 1.8em; }
.sub { color: #5b6675; margin-top: 0; }
.pick { font-size: 1.35em; font-weight: 600; background: #fff4e5; border-left: 5px solid #e8590c;
        padding: 0.5em 0.8em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #e3e8ee; text-align: left; }
th { background: #f1f4f8; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.chosen td { background: #fff4e5; font-weight: 600; }
tbody tr:nth-child(even) td { background: #fafbfc; }
tbody tr.chosen:nth-child(even) td { background: #fff4e5; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #e3e8ee; }
.wide { overflow-x: auto; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
figcaption { color: #5b6675; font-size: 0.9em; }
.note { color: #5b6675; font-size: 0.9em; }
"""


def _e(value) -> str:
    return html.escape(str(value))


def _fmt(value) -> str:
    """A cell as people read it: floats to 4 significant digits, integers with separators."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _table(rows: list[dict], columns: list[str], chosen=lambda row: False) -> str:
    """An escaped HTML table; numeric cells right-aligned, rows where ``chosen`` holds highlighted."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{_e(_fmt(row.get(c)))}</td>' if isinstance(row.get(c), (int, float))
                        else f"<td>{_e(_fmt(row.get(c)))}</td>" for c in columns)
        body.append(f'<tr class="chosen">{cells}</tr>' if chosen(row) else f"<tr>{cells}</tr>")
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _arch(xi: dict, names: list[str]) -> str:
    return f"⟨{plots.arch_text(xi, names)}⟩"


def _ranked(doc: dict) -> list[dict]:
    return sorted(results.finished(doc["evaluations"]), key=lambda r: -float(r["w"]))


def _speedups(latency: dict, pick: dict) -> dict[str, float] | None:
    """T's latency over the pick's at each measured batch size, or None if the pick was not measured."""
    entry = lat.find(latency, pick)
    if entry is None:
        return None
    top = latency["maximum_point"]["latency"]
    return {b: top[b] / entry["latency"][b] for b in entry["latency"]}


def _why(doc: dict, names: list[str]) -> str:
    pick = doc["best"]
    ranked = _ranked(doc)
    ratios = results.factors(doc, pick)  # what W was computed from: i/T, or lat/T under --speed latency
    formula = "·".join(f"(1 − {k})" for k in ratios)
    numbers = "·".join(f"(1 − {v:.4g})" for v in ratios.values())
    divisor = results.divisor(doc, pick)
    goal = results.objective(doc["settings"])
    lead = (f"It has the lowest ê of the {len(ranked)} finished evaluation(s) (--objective accuracy, within "
            f"the study's budgets); its W-coefficient is " if goal == "accuracy" else
            "It was chosen by --objective cost (below); its W-coefficient is " if goal == "cost" else
            f"It has the highest W-coefficient of the {len(ranked)} finished evaluation(s): ")
    text = f"{lead}W = {formula} / ê = {numbers} / {divisor:.4g} = {float(pick['w']):.4g}."
    if divisor > pick["error"]:
        text += (f" Its ê on B was {float(pick['error']):.4g}, below the study's floor, so W divides by the floor: "
                 f"half of one of B's targets.")
    if results.uses_latency(doc):
        s = results.speed(doc)
        text += (f" The study ran with --speed latency, so lat/T stands in for i/T: ξ*'s measured forward "
                 f"latency at batch {s['batch_size']}, {1000 * pick['latency']:.4g} ms, over T's, "
                 f"{1000 * s['T_seconds']:.4g} ms.")
    if len(ranked) > 1:
        second = ranked[1]
        text += f" The runner-up, {_arch(second, names)}, has W = {float(second['w']):.4g}."
    sure = [line for line in (results.cost_line(doc), results.margin_line(doc), results.tie_line(doc)) if line]
    ids = ["cost" if line.startswith("--objective") else line.split(":")[0] for line in sure]
    return f"<p>{_e(text)}</p>" + "".join(f"<p id='{i}'>{_e(line)}</p>" for i, line in zip(ids, sure))


def _w_latency_row(doc: dict) -> dict | None:
    """The latency W used, pick against T, in a --speed latency study; else None."""
    if not results.uses_latency(doc):
        return None
    s, pick = results.speed(doc), doc["best"]
    ms, t_ms = 1000 * pick["latency"], 1000 * s["T_seconds"]
    return {"": f"lat: latency W uses, ms at batch {s['batch_size']}", "ξ*": ms, "T": t_ms, "ξ* / T": ms / t_ms}


def _comparison(doc: dict, latency: dict | None) -> list[dict]:
    """Rows of the pick-against-T table: W, ê, p, effective size, i, and measured latency."""
    pick, t = doc["best"], doc["maximum_point"]
    ref = t.get("reference")
    rows = [{"": "W", "ξ*": pick["w"], "T": 0.0, "ξ* / T": "T scores 0 by definition"}]
    if ref and ref.get("status") == "ok":  # T trained too (--from): its own short-run ê beside the pick's
        rows.append({"": "ê after the short run", "ξ*": pick["error"], "T": ref["error"],
                     "ξ* / T": pick["error"] / ref["error"] if ref["error"] else None})
        if results.metric(doc["settings"]) == "error":  # else 1 − ê is no accuracy
            rows.append({"": "held-out accuracy after the short run (1 − ê)", "ξ*": 1 - pick["error"],
                         "T": 1 - ref["error"], "ξ* / T": (1 - pick["error"]) / (1 - ref["error"])
                         if ref["error"] < 1 else None})
    else:
        rows.append({"": "ê", "ξ*": pick["error"], "T": None, "ξ* / T": "T is not trained"})
    for key, label in (("params", "p: parameters"), ("params_effective", "effective size: p of the layers B"),
                       ("ops", "i: operations per forward pass")):
        rows.append({"": label, "ξ*": pick[key], "T": t[key], "ξ* / T": pick[key] / t[key]})
    used = _w_latency_row(doc)
    rows += [used] if used else []
    entry = lat.find(latency, pick) if latency else None
    for b in (entry or {}).get("latency", {}):
        ms, t_ms = 1000 * entry["latency"][b], 1000 * latency["maximum_point"]["latency"][b]
        if used and (used["ξ*"], used["T"]) == (ms, t_ms):
            continue  # the same measurement as W's row: usually W read this very latency.json
        rows.append({"": f"measured latency, ms at batch {b}", "ξ*": ms, "T": t_ms, "ξ* / T": ms / t_ms})
    return rows


def _theta_text(r: dict) -> str:
    """θ as it trained: AdamW has no momentum, so none is shown for it."""
    if r.get("optimizer", "sgd") == "adamw":
        return f"AdamW, lr {r.get('lr')}, batch size {r.get('batch_size')}"
    return f"SGD, lr {r.get('lr')}, momentum {r.get('momentum')}, batch size {r.get('batch_size')}"


def _pick_section(doc: dict, latency: dict | None) -> str:
    names = results.parameter_names(doc)
    pick = doc.get("best")
    if not pick:
        return ("<section id='pick'><h2>Chosen architecture</h2><p>No evaluation finished, so no architecture "
                "was chosen; the failed evaluations and their reasons are listed below.</p></section>")
    theta = f"({_theta_text(pick)})"
    partial = results.unfinished(doc)
    heading = "Best architecture so far (unfinished study)" if partial else "Chosen architecture"
    parts = [f"<section id='pick'><h2>{heading}</h2>",
             f"<p class='pick' id='partial'>{_e(partial)}</p>" if partial else "",
             f"<p class='pick' id='pick-arch'>ξ* = {_e(_arch(pick, names))}</p>",
             f"<p>Trained under θ* = {_e(theta)}; T = {_e(_arch(doc['maximum_point']['architecture'], names))}.</p>",
             _why(doc, names), _table(_comparison(doc, latency), ["", "ξ*", "T", "ξ* / T"]),
             *(f"<p class='note' id='{cls}'>{_e(line)}</p>" for cls, line in
               (("source", results.source_line(doc)), ("separation", results.separation(doc))) if line)]
    speed = _speedups(latency, pick) if latency else None
    if speed:
        text = ", ".join(f"{s:.3g}× at batch {b}" for b, s in speed.items())
        parts.append(f"<p>Measured speed-up of ξ* over T on this machine: {_e(text)}.</p>")
    return "".join(parts) + "</section>"


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


CAPTIONS = {
    plots.PARETO_PARAMS: "ê against p for every finished evaluation, coloured by W. Ringed points are on the "
                         "Pareto front in (p, i, ê); the red star is the pick; the dotted line is T's p.",
    plots.PARETO_OPS: "ê against i (operation count), as above; the dotted line is T's i.",
    plots.INIT_MODES: "ê against p for this study and the ones compared with it (ose report --compare), one "
                      "colour per init mode: candidates that inherit T's weights, or start from scratch; black "
                      "squares are T's own short run.",
    plots.LATENCY: "Measured forward-pass latency against the operation count i over Ξ, log-log, one panel per "
                   "batch size; ρ is Spearman's rank correlation between the two.",
}


def _figures_section(pngs: list[Path], latency: dict | None) -> str:
    figures = {p.name: _figure(p, CAPTIONS.get(p.name, p.name)) for p in pngs}
    pareto = [figures.pop(n) for n in (plots.PARETO_PARAMS, plots.PARETO_OPS) if n in figures]
    parts = ["<section id='figures'><h2>Figures</h2>", f"<div class='pair'>{''.join(pareto)}</div>",
             *figures.values()]
    if latency:
        rho = ", ".join(f"{r:.3f} at batch {b}" for b, r in lat.correlations(latency).items())
        parts.append(f"<p id='rho'>Spearman ρ(i, measured latency) over Ξ: {_e(rho)}.</p>")
    if not pngs:
        parts.append("<p>No evaluation finished: nothing to plot.</p>")
    return "".join(parts) + "</section>"


def _latency_cells(doc: dict, record: dict) -> dict:
    """The ranked table's latency (ms) and lat/T in a --speed latency study (W's factor); else none."""
    if not results.uses_latency(doc):
        return {}
    return {"latency (ms)": 1000 * record["latency"], "lat/T": results.factors(doc, record)["lat/T"]}


def _evaluations_section(doc: dict) -> str:
    names, t = results.parameter_names(doc), doc["maximum_point"]
    front = {plots.eval_key(r, names) for r in doc.get("pareto", [])}
    pick_key = plots.eval_key(doc["best"], names) if doc.get("best") else None
    rows = [{"rank": n, **{k: r[k] for k in names}, "optimizer": r.get("optimizer", "sgd"), "lr": r.get("lr"),
             "momentum": r.get("momentum") if r.get("optimizer", "sgd") == "sgd" else None,
             "batch": r.get("batch_size"), "W": r["w"], "ê": r["error"], "loss": r.get("loss"), "p": r["params"],
             "p/T": r["params"] / t["params"], "i": r["ops"], "i/T": r["ops"] / t["ops"], **_latency_cells(doc, r),
             "steps": r.get("steps"), "seconds": r.get("seconds"),
             "Pareto": "●" if plots.eval_key(r, names) in front else "",
             "_key": plots.eval_key(r, names)} for n, r in enumerate(_ranked(doc), 1)]
    columns = [c for c in rows[0] if c != "_key"] if rows else []
    parts = ["<section id='evaluations'><h2>Evaluations ranked by W</h2>",
             _table(rows, columns, chosen=lambda r: r["_key"] == pick_key) if rows else "<p>None finished.</p>"]
    failed = [{**{k: r.get(k) for k in names}, "lr": r.get("lr"), "status": r.get("status"),
               "reason": r.get("message") or "no reason recorded"}
              for r in doc["evaluations"] if r.get("status") != "ok"]
    if failed:
        parts += [f"<h3>Failed evaluations ({len(failed)})</h3>", _table(failed, list(failed[0]))]
    return "".join(parts) + "</section>"


def _study_rows(doc: dict) -> list[dict]:
    s = doc["settings"]
    cfg, bound, data, space = s.get("config", {}), s.get("bound", {}), s.get("data", {}), s.get("space", {})
    t = doc["maximum_point"]
    thetas = "; ".join(", ".join(f"{k}={v}" for k, v in th.items()) for th in cfg.get("theta", []))
    rows = [("space", f"{space.get('name')} (family {space.get('family')})"),
            ("T (maximum point)", f"{_arch(t['architecture'], list(t['architecture']))}: "
                                  f"p = {t['params']:,}, i = {t['ops']:,}"),
            ("|Ξ|", bound.get("space_size")), ("|Θ|", bound.get("thetas")), ("Θ", thetas),
            ("ε", bound.get("epsilon")), ("s (steps per candidate)", bound.get("steps")),
            ("candidates planned", bound.get("candidates")),
            ("evaluations stored", "{stored} of {total}".format(**doc["progress"]) if "progress" in doc else None),
            ("strategy", bound.get("strategy")),
            ("task, metric ê", f"{cfg.get('task')}, {cfg.get('metric')}"),
            ("data", f"{data.get('source')}: {data.get('examples')} examples, tokenizer {data.get('tokenizer')}"),
            ("device, precision", f"{s.get('device')}, {s.get('precision')}"), ("seed", cfg.get("seed")),
            ("threads", s.get("threads")), ("training time, s", s.get("train_seconds")),
            ("ose version", s.get("ose_version"))]
    if results.uses_latency(doc):
        speed = results.speed(doc)
        rows.insert(2, ("speed in W", f"measured latency at batch {speed['batch_size']} in place of i; "
                                      f"T: {1000 * speed['T_seconds']:.4g} ms"))
    return [{"setting": k, "value": _fmt(v)} for k, v in rows]


def _latency_rows(latency: dict) -> list[dict]:
    s = latency["settings"]
    m = s.get("machine", {})
    rows = [("batch sizes", ", ".join(map(str, s["batch_sizes"]))), ("statistic", s.get("statistic")),
            ("repeats, warm-up", f"{s.get('repeats')}, {s.get('warmup')}"), ("torch threads", s.get("threads")),
            ("sequence length L", s.get("seq_len")), ("attention", s.get("attn_implementation")),
            ("torch", s.get("torch")), ("machine", f"{m.get('processor')}, {m.get('cpu_count')} CPUs, "
                                                   f"{m.get('platform')}")]
    spread = lat.t_spread(latency)
    if spread:
        rows.append(("T", "; ".join(f"batch {b}: {text}" for b, text in spread.items())))
    return [{"setting": f"latency: {k}", "value": _fmt(v)} for k, v in rows]


def _exports_section(doc: dict) -> str:
    """The models ``ose distil`` exported of this study, measured on the test part."""
    exported = doc.get("exports")
    if not exported:
        return ""
    items = "".join(f"<li>{_e(results.export_line(e))}</li>" for e in exported)
    return (f"<section id='exports'><h2>Exported models</h2><p>Distilled with <code>ose distil</code> and measured "
            f"on the test part, which neither the search nor the training selected on.</p><ul>{items}</ul></section>")


def _settings_section(doc: dict, latency: dict | None) -> str:
    rows = _study_rows(doc) + (_latency_rows(latency) if latency else [])
    return f"<section id='settings'><h2>Study settings</h2>{_table(rows, ['setting', 'value'])}</section>"


def render(doc: dict, pngs: list[Path], latency: dict | None = None) -> str:
    """The page as a string, embedding the figures ``pngs`` (as written by ``plots.write_plots``)."""
    name = doc["settings"].get("space", {}).get("name", "search space")
    sections = [_pick_section(doc, latency), _exports_section(doc), _figures_section(pngs, latency),
                _evaluations_section(doc), _settings_section(doc, latency)]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_e(f'OSE report: {name}')}</title><style>{_CSS}</style></head><body>"
            f"<h1>Optimal subarchitecture extraction: {_e(name)}</h1>"
            f"<p class='sub'>W-coefficient against the maximum point T (de Wynter, 2020)</p>"
            + "".join(sections) + "</body></html>\n")


def write_html(out: Path, doc: dict, latency: dict | None = None, others: list[dict] = ()) -> list[Path]:
    """Write ``out``/report.html and its figures; return the paths written (report.html first).

    ``doc`` is a results document (``results.document``: settings, maximum_point, evaluations,
    best, pareto); ``latency`` an optional latency document (``ose.latency.measure_space`` or
    ``ose.latency.load``) for the ops-vs-latency figure, ρ and the pick's measured speed-up over
    T. The PNGs are also left in ``out``; report.html embeds them and needs nothing else.
    """
    out = Path(out)
    pngs = plots.write_plots(out, doc, latency, others)
    path = out / REPORT_FILE
    results._atomic_write(path, render(doc, pngs, latency))
    return [path, *pngs]
