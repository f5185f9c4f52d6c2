"""One self-contained HTML page: figures embedded as base64 PNG, tables as HTML."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .tables import Cell, row_cells, temperatures_of

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; } th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; background: #fde9a9; }
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


def table_html(table: dict[str, dict[float, Cell]], caption: str) -> str:
    temps = temperatures_of(table)
    head = "".join(f"<th>T={t:g}</th>" for t in temps)
    body = []
    for row, cells in table.items():
        tds = ["<td></td>" if cell is None else
               f'<td class="{"best" if best else ""}" title="mean {cell.mean:.3f}, std {cell.std:.3f}, n={cell.n}">'
               f"{cell.mean:.2f}</td>" for cell, best in row_cells(cells, temps)]
        body.append(f"<tr><td>{html.escape(row)}</td>{''.join(tds)}</tr>")
    return (f'<table><caption class="note">{html.escape(caption)}</caption><tr><th>setting</th>{head}</tr>'
            + "".join(body) + "</table>")


def points_html(points: dict[str, Cell], caption: str) -> str:
    """Runs without a fixed temperature: one row per setting with mean, std and seeds."""
    body = "".join(f"<tr><td>{html.escape(row)}</td><td>{cell.mean:.2f}</td><td>{cell.std:.2f}</td><td>{cell.n}</td></tr>"
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
