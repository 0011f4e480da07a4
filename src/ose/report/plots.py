"""Figures of one extraction, as PNG files: the Pareto views and measured latency against i.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot,
so nothing here touches matplotlib's global state or needs a display.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import latency as lat
from . import results

PARETO_PARAMS = "pareto_params.png"
PARETO_OPS = "pareto_ops.png"
LATENCY = "latency.png"
THETA_KEYS = ("lr", "momentum", "batch_size")
AXIS = {"params": ("p", "p(ξ): trainable parameters"), "ops": ("i", "i(ξ): operations per forward pass")}


def arch_text(xi: dict, names: list[str]) -> str:
    """``D=4, A=8, H=1024, I=768``: how an architecture is written in figures and the report."""
    return ", ".join(f"{n}={xi[n]}" for n in names)


def eval_key(record: dict, names: list[str]) -> tuple:
    """Identity of one evaluation: ξ and θ."""
    return tuple(record.get(k) for k in (*names, *THETA_KEYS))


def _finite(records: list[dict]) -> list[dict]:
    # W is finite (ê has a floor), but a record of a study without B's size may still hold W = ∞.
    return [r for r in results.finished(records)
            if all(isinstance(r.get(k), (int, float)) and math.isfinite(r[k]) for k in ("w", "error"))]


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path)
    return path


def _metric(doc: dict) -> str:
    metric = results.metric(doc["settings"])
    return {"error": "ê: error rate on B", "loss": "ê: cross-entropy on B", "kl": "ê: KL from the teacher on B",
            "train-loss": "ê: training loss, last quarter"}.get(metric, f"ê: {metric}")


def pareto_plot(doc: dict, x: str, path: Path) -> Path | None:
    """ê against p (``x="params"``) or i (``x="ops"``) for the finished evaluations, coloured by W.

    Pareto-front members (in p, i, ê) are ringed, the pick is a red star with its label, and a
    dotted line marks T's value. Returns ``path``, or None if no evaluation can be placed.
    """
    names, done = results.parameter_names(doc), _finite(doc["evaluations"])
    if not done:
        return None
    fig = Figure(figsize=(7.5, 4.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    dots = ax.scatter([r[x] for r in done], [r["error"] for r in done], c=[r["w"] for r in done],
                      cmap="viridis", s=36, zorder=3, label="evaluations")
    fig.colorbar(dots, ax=ax, label="W (higher is better)")
    bars = [r for r in done if "error_interval_95" in r]
    if bars:  # ê's 95% interval over B's rows
        ax.errorbar([r[x] for r in bars], [r["error"] for r in bars],
                    yerr=[[max(0.0, r["error"] - r["error_interval_95"][0]) for r in bars],
                          [max(0.0, r["error_interval_95"][1] - r["error"]) for r in bars]],
                    fmt="none", ecolor="grey", elinewidth=0.8, alpha=0.6, zorder=2, label="ê's 95% interval")
    front = {eval_key(r, names) for r in doc.get("pareto", [])}
    ring = [r for r in done if eval_key(r, names) in front]
    ax.scatter([r[x] for r in ring], [r["error"] for r in ring], s=120, facecolors="none", edgecolors="black",
               linewidths=1.3, zorder=4, label="Pareto front (p, i, ê)")
    _mark_pick(ax, doc, x, names)
    ax.axvline(doc["maximum_point"][x], color="grey", linestyle=":", zorder=1, label="T")
    limit = _budget(doc, x)
    if limit is not None:
        ax.axvline(limit, color="tab:red", linestyle="--", zorder=1, label=f"budget: {symbol_of(x)} ≤ {limit:,.0f}")
    ax.set_xscale("log")
    symbol, label = AXIS[x]
    ax.set(xlabel=label, ylabel=_metric(doc), title=f"ê against {symbol}: {len(done)} finished evaluations")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def symbol_of(x: str) -> str:
    return AXIS[x][0]


def _budget(doc: dict, x: str) -> float | None:
    """The study's budget on ``x`` (--max-params, --max-ops) in the count's unit, or None."""
    from .. import budgets

    raw = doc["settings"].get("config", {}).get(budgets.KINDS[x][0])
    b = budgets.parse(x, raw) if raw is not None else None
    return b.limit(doc["maximum_point"][x]) if b else None


def _mark_pick(ax, doc: dict, x: str, names: list[str]) -> None:
    pick = doc.get("best")
    if not pick or not _finite([pick]):  # no pick, or one whose W or ê cannot be placed
        return
    ax.scatter([pick[x]], [pick["error"]], marker="*", s=280, color="red", edgecolors="black", zorder=5,
               label="pick ξ*")
    ax.annotate(f"ξ* ⟨{arch_text(pick, names)}⟩\nW = {pick['w']:.3g}", (pick[x], pick["error"]),
                xytext=(18, 18), textcoords="offset points", fontsize=8, zorder=6,
                bbox={"boxstyle": "round", "fc": "white", "alpha": 0.85}, arrowprops={"arrowstyle": "->"})


def latency_plot(latency: dict, path: Path, pick: dict | None = None) -> Path:
    """Measured latency against i over Ξ, log-log, one panel per batch size with Spearman's ρ.

    T is a black square; ``pick`` (any record holding ξ's parameters) a red star if measured.
    """
    sizes = [str(b) for b in latency["settings"]["batch_sizes"]]
    rho = lat.correlations(latency)
    fig = Figure(figsize=(5.2 * len(sizes), 4.4), dpi=110, layout="constrained")
    archs, top = latency["architectures"], latency["maximum_point"]
    chosen = lat.find(latency, pick) if pick else None
    for ax, b in zip(fig.subplots(1, len(sizes), squeeze=False)[0], sizes):
        ax.scatter([a["ops"] for a in archs], [1000 * a["latency"][b] for a in archs], s=22, alpha=0.75,
                   color="tab:blue", zorder=3, label="ξ ∈ Ξ")
        ax.scatter([top["ops"]], [1000 * top["latency"][b]], marker="s", s=70, color="black", zorder=4, label="T")
        ax.annotate("T", (top["ops"], 1000 * top["latency"][b]), xytext=(-14, 4), textcoords="offset points")
        if chosen:
            ax.scatter([chosen["ops"]], [1000 * chosen["latency"][b]], marker="*", s=260, color="red",
                       edgecolors="black", zorder=5, label="pick ξ*")
            ax.annotate("ξ*", (chosen["ops"], 1000 * chosen["latency"][b]), xytext=(10, -4),
                        textcoords="offset points")
        ax.margins(0.08)  # keep the markers at the extremes (ξ*, T) inside the frame
        ax.set(xscale="log", yscale="log", xlabel="i(ξ): operations per sequence",
               ylabel=f"latency, ms per batch of {b}", title=f"batch {b}: Spearman ρ = {rho[b]:.3f}")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


INIT_MODES = "init_modes.png"
INIT_COLOURS = {"inherit": "tab:orange", "scratch": "tab:blue"}


def init_plot(docs: list[dict], path: Path) -> Path | None:
    """ê against p for studies of one space that started their candidates differently (inherited
    weights, scratch), one colour per init mode, with T's own short-run ê where a study has it.
    None unless the studies hold both modes."""
    modes = {d["settings"].get("init", "scratch") for d in docs}
    if len(modes) < 2:
        return None
    fig = Figure(figsize=(7.5, 4.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for d in docs:
        mode, done = d["settings"].get("init", "scratch"), _finite(d["evaluations"])
        ax.scatter([r["params"] for r in done], [r["error"] for r in done], s=36, zorder=3,
                   color=INIT_COLOURS.get(mode, "grey"), label=f"{mode}: {len(done)} evaluations")
        ref = d["maximum_point"].get("reference")
        if ref and ref.get("status") == "ok":
            ax.scatter([d["maximum_point"]["params"]], [ref["error"]], marker="s", s=70, zorder=4, color="black",
                       label=f"T's own run ({mode})")
    ax.set_xscale("log")
    ax.set(xlabel=AXIS["params"][1], ylabel=_metric(docs[0]), title="ê against p, by how the candidates started")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def write_plots(out: Path, doc: dict, latency: dict | None = None, others: list[dict] = ()) -> list[Path]:
    """Write pareto_params.png, pareto_ops.png, (with ``latency``) latency.png and (with
    ``others``, studies compared with this one, when they differ in init mode) init_modes.png.

    Returns the files written; a Pareto figure is skipped when no evaluation finished.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [pareto_plot(doc, "params", out / PARETO_PARAMS), pareto_plot(doc, "ops", out / PARETO_OPS)]
    if latency is not None:
        paths.append(latency_plot(latency, out / LATENCY, doc.get("best")))
    if others:
        paths.append(init_plot([doc, *others], out / INIT_MODES))
    return [p for p in paths if p is not None]
