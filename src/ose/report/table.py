"""Plain-text, CSV and JSON renderings of rows of numbers."""

from __future__ import annotations

import csv
import io

from .. import jsonout


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def text_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Right-aligned columns with a header line; numbers with thousands separators."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    cells = [[_cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def csv_text(rows: list[dict], columns: list[str] | None = None) -> str:
    buf = io.StringIO()
    columns = columns or (list(rows[0]) if rows else [])
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def render(rows: list[dict], fmt: str, columns: list[str] | None = None) -> str:
    if fmt == "csv":
        return csv_text(rows, columns)
    if fmt == "json":
        return jsonout.dumps(rows, indent=2)
    return text_table(rows, columns)
