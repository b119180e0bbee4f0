"""The report as one self-contained HTML file (inline CSS, charts as embedded PNG)."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from reports.model import Section, Table, format_number

MAX_ROWS = 1000
NUMERIC = {"int", "float1", "float2", "float3", "pct"}

CSS = """
body { font-family: "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC", "Noto Sans CJK SC",
       sans-serif; margin: 2em auto; max-width: 1200px; color: #222; line-height: 1.6; }
h1 { text-align: center; } .subtitle { text-align: center; color: #555; }
h2 { border-bottom: 2px solid #4a6fa5; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-bottom: .3em; } .block-title { text-align: center; font-weight: bold; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 13px; width: 100%; }
th, td { border: 1px solid #aaa; padding: 3px 6px; vertical-align: middle; }
th { background: #dce6f1; } tr:nth-child(even) td { background: #f5f7fa; }
td.num { text-align: right; white-space: nowrap; } .empty { color: #666; }
img { max-width: 100%; display: block; margin: .5em auto; } nav li { list-style: none; }
"""


def _cells(values: list[object], table: Table) -> str:
    out = []
    for value, column in zip(values, table.columns, strict=False):
        text = escape(format_number(value, column.kind))
        cls = ' class="num"' if column.kind in NUMERIC else ""
        out.append(f"<td{cls}>{text}</td>")
    return "".join(out)


def table_html(table: Table) -> str:
    table = table.printed()
    parts = [f"<h3>{escape(table.title)}</h3>"] if table.title else []
    if not table.rows:
        parts.append(f'<p class="empty">{escape(table.empty_text or "本月无")}</p>')
        return "\n".join(parts)
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    if table.block_titles:
        return "\n".join(parts + _blocks_html(table, head))
    rows = "\n".join(f"<tr>{_cells(r, table)}</tr>" for r in table.rows[:MAX_ROWS])
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>")
    if len(table.rows) > MAX_ROWS:
        parts.append(
            f'<p class="empty">共 {len(table.rows)} 行，此处列出前 {MAX_ROWS} 行；'
            f"完整数据见 xlsx “{escape(table.sheet)}”表。</p>"
        )
    return "\n".join(parts)


def _blocks_html(table: Table, head: str) -> list[str]:
    out, body = [], []

    def flush() -> None:
        if body:
            rows = "\n".join(f"<tr>{_cells(r, table)}</tr>" for r in body[1:])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            body.clear()

    for values in table.rows:
        if len(values) == 1:
            flush()
            out.append(f'<p class="block-title">{escape(str(values[0]))}</p>')
        else:
            body.append(values)
    flush()
    return out


def section_html(section: Section, anchor: str) -> str:
    parts = [f'<section id="{anchor}"><h2>{escape(section.title)}</h2>']
    if section.is_empty and not section.tables:
        parts.append(f'<p class="empty">{escape(section.empty_reason or "本月无")}</p>')
    parts += [f"<p>{escape(note)}</p>" for note in section.notes]
    for chart in section.charts:
        data = base64.b64encode(chart.png).decode("ascii")
        parts.append(f'<img alt="{escape(chart.title)}" src="data:image/png;base64,{data}">')
    printed_sheets = {t.sheet for t in section.tables if t.in_print}
    for table in section.tables:
        if not table.in_print and table.sheet in printed_sheets:
            continue  # its printable digest is in the section
        if table.in_print:
            parts.append(table_html(table))
        else:
            parts.append(
                f'<p class="empty">{escape(table.title)}：见 xlsx “{escape(table.sheet)}”表。</p>'
            )
    parts.append("</section>")
    return "\n".join(parts)


def write_html(
    sections: list[Section],
    sources: Table,
    path: Path,
    *,
    title: str,
    subtitle: str,
    summary: str,
) -> Path:
    nav = "".join(
        f'<li><a href="#s{i}">{escape(s.title)}</a></li>' for i, s in enumerate(sections, 1)
    )
    body = "\n".join(section_html(s, f"s{i}") for i, s in enumerate(sections, 1))
    html = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1><p class="subtitle">{escape(subtitle)}</p>
<h2>概述</h2><p>{escape(summary)}</p>
<nav><h2>目录</h2><ul>{nav}</ul></nav>
{body}
<section id="sources"><h2>附：数据来源与依据</h2>{table_html(sources)}</section>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
