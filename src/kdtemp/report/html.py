"""One self-contained HTML page: figures embedded as base64 PNG, tables as HTML."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .tables import SPREAD_MARK, SPREAD_NOTE, Cell, marks_any, row_marks, spread, temperatures_of

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; } th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; background: #fde9a9; }
td.within { background: repeating-linear-gradient(45deg, #fff, #fff 4px, #f3ecd2 4px, #f3ecd2 8px); }
figure { margin: 10px 0; } figure img { max-width: 100%; }
.note { color: #666; font-size: 12px; }
"""

SCRIPT = """
window.addEventListener('load', () => {
  const images = Array.from(document.querySelectorAll('img'));
  const ok = images.filter(i => i.complete && i.naturalWidth > 0).map(i => i.id);
  document.body.dataset.rendered = ok.join(' ');
});
"""


def image_tag(path: Path, identifier: str, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img id="{identifier}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def cell_text(cell: Cell, near: bool = False) -> str:
    """A heatmap cell as the Markdown shows it: mean ± std when there are seeds to spread, the
    mean alone with one seed; the spread mark when it lies within the best cell's seed std."""
    text = f"{cell.mean:.2f} ± {cell.std:.2f}" if cell.n > 1 else f"{cell.mean:.2f}"
    return text + (f" {SPREAD_MARK}" if near else "")


def table_html(table: dict[str, dict[float, Cell]], caption: str) -> str:
    """A heatmap table: the best of each row highlighted, the cells within the best cell's seed
    std hatched and marked (with the legend line under the table)."""
    temps = temperatures_of(table)
    head = "".join(f"<th>T={t:g}</th>" for t in temps)
    body = []
    for row, cells in table.items():
        tds = ["<td></td>" if cell is None else
               f'<td class="{"best" if best else "within" if near else ""}" '
               f'title="mean {cell.mean:.3f}, std {cell.std:.3f}, n={cell.n}">{html.escape(cell_text(cell, near))}</td>'
               for cell, best, near in row_marks(cells, temps)]
        body.append(f"<tr><td>{html.escape(row)}</td>{''.join(tds)}</tr>")
    legend = f"<p class='note'>{html.escape(SPREAD_NOTE, quote=False)} (hatched).</p>" if marks_any(table) else ""
    return (f'<table><caption class="note">{html.escape(caption)}</caption><tr><th>setting</th>{head}</tr>'
            + "".join(body) + "</table>" + legend)


def points_html(points: dict[str, Cell], caption: str) -> str:
    """Runs without a fixed temperature: one row per setting with mean, std and seeds."""
    body = "".join(f"<tr><td>{html.escape(row)}</td><td>{cell.mean:.2f}</td><td>{spread(cell.std, cell.n)}</td><td>{cell.n}</td></tr>"
                   for row, cell in points.items())
    return (f'<table><caption class="note">{html.escape(caption)}</caption>'
            f"<tr><th>setting</th><th>mean</th><th>std</th><th>seeds</th></tr>{body}</table>")


def rows_html(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            if value is None:
                cells.append("<td>n/a</td>")
            else:
                cells.append(f"<td>{value:.3f}</td>" if isinstance(value, float) else f"<td>{html.escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def page(title: str, sections: list[tuple[str, str]], summary: str) -> str:
    parts = [f"<h2>{html.escape(name)}</h2>{content}" for name, content in sections]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>"
            f"<h1>{html.escape(title)}</h1><p class='note'>{html.escape(summary)}</p>{''.join(parts)}</body></html>")
