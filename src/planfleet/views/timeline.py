"""The run's timeline as an SVG a browser opens: one row per task, each attempt a bar.

Bars are coloured by how the attempt ended (verified green, failed or timed out red,
stopped grey, still running blue); a phase gate is a diamond on its own row. Built as text
with the standard library: every label is escaped, task ids and reasons come from the plan.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

COLOURS = {"verified": "#2e9d4f", "failed": "#d64541", "timeout": "#d64541", "stopped": "#999"}
RUNNING = "#3b7dd8"
ROW, LABEL, WIDTH, TOP = 22, 160, 760, 30


def svg(report: dict[str, Any]) -> str:
    """Return the SVG document of ``report`` (from :func:`planfleet.views.report.build`)."""
    rows = report["tasks"]
    stamps = [float(a["end"] or a["start"]) for r in rows for a in r["attempts"]]
    first = min((float(a["start"]) for r in rows for a in r["attempts"]), default=0.0)
    start = float(report["start"]) if report.get("start") is not None else first
    span = max([s - start for s in stamps] + [float(report.get("makespan_s") or 0.0), 1.0])
    scale = WIDTH / span

    def x(t: float) -> float:
        return round(LABEL + (t - start) * scale, 1)

    height = TOP + ROW * len(rows) + 30
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{LABEL + WIDTH + 20}" height="{height}" font-family="sans-serif" '
        'font-size="12">',
        f"<title>{escape('planfleet run ' + str(report['plan']))}</title>",
        f'<text x="4" y="16" font-weight="bold">{escape(_heading(report))}</text>',
    ]
    for i, row in enumerate(rows):
        y = TOP + i * ROW
        out.append(f'<g class="task" data-task={quoteattr(row["task"])}>')
        out.append(f'<text x="4" y="{y + 14}">{escape(row["task"])}</text>')
        for a in row["attempts"]:
            end = a["end"] if a["end"] is not None else start + span
            what = f"{row['task']} attempt {a['attempt']}: {a['outcome']}"
            if a.get("reason"):
                what += f" ({a['reason']})"
            tip = f"<title>{escape(what[:300])}</title>"
            if row["kind"] == "gate":
                cx, cy = x(end), y + 9
                points = f"{cx},{cy - 7} {cx + 7},{cy} {cx},{cy + 7} {cx - 7},{cy}"
                fill = COLOURS.get(a["outcome"], RUNNING)
                out.append(f'<polygon class="gate" points="{points}" fill="{fill}">{tip}</polygon>')
                continue
            left, right = x(a["start"]), x(end)
            fill = COLOURS.get(a["outcome"], RUNNING)
            out.append(
                f'<rect class="attempt" x="{left}" y="{y + 3}" width="{max(right - left, 1.0)}" '
                f'height="{ROW - 6}" fill="{fill}">{tip}</rect>'
            )
        out.append("</g>")
    axis = TOP + ROW * len(rows) + 14
    for k in range(6):
        t = span * k / 5
        out.append(f'<text x="{x(start + t)}" y="{axis}" fill="#555">{t:.0f}s</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _heading(report: dict[str, Any]) -> str:
    ratio = report.get("ratio")
    made = report.get("makespan_s")
    parts = [f"{report['plan']}: makespan {made:.1f}s" if made is not None else report["plan"]]
    if ratio is not None:
        parts.append(f"{ratio:.2f}x the lower bound {report['lower_bound_s']:.1f}s")
    return ", ".join(parts)
