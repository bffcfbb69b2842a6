"""A report as blocks (headings, paragraphs, tables with cell classes, figures, collapsible details), rendered
once as Markdown and once as a self-contained HTML page (CSS inline, figures embedded as base64 PNG)."""
from __future__ import annotations

import base64
import dataclasses
import html
import os
from typing import Sequence, Union

# Cell classes: ok (agrees / passes), fail (disagrees / fails), diff (differs between runs), muted (not compared)
CELL_CLASSES = ("", "ok", "fail", "diff", "muted", "num")


@dataclasses.dataclass(frozen=True)
class Cell:
  text: str
  cls: str = ""

  def __post_init__(self):
    if self.cls not in CELL_CLASSES:
      raise ValueError(f"cell class must be one of {CELL_CLASSES}, got {self.cls!r}")


@dataclasses.dataclass(frozen=True)
class Heading:
  level: int
  text: str
  anchor: str = ""


@dataclasses.dataclass(frozen=True)
class Paragraph:
  text: str
  cls: str = ""


@dataclasses.dataclass(frozen=True)
class Table:
  headers: Sequence[str]
  rows: Sequence[Sequence[Cell | str]]
  caption: str = ""


@dataclasses.dataclass(frozen=True)
class Figure:
  filename: str   # a PNG in the report folder
  caption: str


@dataclasses.dataclass(frozen=True)
class Details:
  summary: str
  blocks: Sequence["Block"]
  open: bool = False


Block = Union[Heading, Paragraph, Table, Figure, Details]


def _cell(c) -> Cell:
  return c if isinstance(c, Cell) else Cell(str(c))


# -- Markdown ------------------------------------------------------------------------------------
def _md_text(cell: Cell) -> str:
  text = cell.text.replace("|", "\\|").replace("\n", " ")
  if cell.cls == "fail":
    return f"**✗ {text}**"
  if cell.cls == "diff":
    return f"**{text}**"
  return text


def to_markdown(blocks: Sequence[Block]) -> str:
  lines: list[str] = []
  for block in blocks:
    if isinstance(block, Heading):
      lines += ["#" * block.level + " " + block.text, ""]
    elif isinstance(block, Paragraph):
      lines += [block.text, ""]
    elif isinstance(block, Table):
      if block.caption:
        lines += [f"_{block.caption}_", ""]
      lines.append("| " + " | ".join(block.headers) + " |")
      lines.append("|" + "---|" * len(block.headers))
      lines += ["| " + " | ".join(_md_text(_cell(c)) for c in row) + " |" for row in block.rows]
      lines.append("")
    elif isinstance(block, Figure):
      lines += [f"![{block.caption}]({block.filename})", ""]
    elif isinstance(block, Details):
      lines += [f"**{block.summary}**", ""]
      lines.append(to_markdown(block.blocks))
  return "\n".join(lines)


# -- HTML ----------------------------------------------------------------------------------------
_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 1.5em 2em; color: #1d2330; background: #fff; }
h1 { font-size: 1.6em; border-bottom: 2px solid #2c5d8f; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #c9d3de; padding-bottom: .2em; }
h3 { font-size: 1.1em; margin-top: 1.4em; color: #2c5d8f; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
caption { text-align: left; color: #555; padding-bottom: .3em; font-style: italic; }
th { background: #eef2f7; text-align: left; position: sticky; top: 0; }
th, td { border: 1px solid #d5dce5; padding: 3px 8px; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.ok { background: #e6f4ea; color: #1e6b34; }
td.fail { background: #fde8e8; color: #a11d1d; font-weight: 600; }
td.diff { background: #fff4d6; font-weight: 600; }
td.muted { color: #8a94a3; }
p.verdict-ok { background: #e6f4ea; border-left: 5px solid #2e8b57; padding: .6em 1em; }
p.verdict-fail { background: #fde8e8; border-left: 5px solid #c0392b; padding: .6em 1em; }
p.note { color: #555; }
details { margin: .4em 0 .8em; }
summary { cursor: pointer; color: #2c5d8f; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #d5dce5; padding: 6px; background: #fafbfc; }
figure img { max-width: 520px; display: block; }
figcaption { font-size: 12px; color: #555; max-width: 520px; }
"""

# Sets <body data-rendered='{"tables": n, "figures": n, "figures_loaded": n}'> once the page has loaded, so a
# headless browser (tests/harness/test_report_browser.py) and a reader's console can see what rendered.
_SELF_CHECK = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('figure img'));
  document.body.dataset.rendered = JSON.stringify({
    tables: document.querySelectorAll('table').length,
    figures: imgs.length,
    figures_loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length});
});
"""


def _html_cell(cell: Cell, tag: str = "td") -> str:
  cls = f' class="{cell.cls}"' if cell.cls else ""
  return f"<{tag}{cls}>{html.escape(cell.text)}</{tag}>"


def _html_blocks(blocks: Sequence[Block], out_dir: str) -> list[str]:
  out: list[str] = []
  figures: list[str] = []

  def flush():
    if figures:
      out.append('<div class="figures">' + "".join(figures) + "</div>")
      figures.clear()

  for block in blocks:
    if not isinstance(block, Figure):
      flush()
    if isinstance(block, Heading):
      anchor = f' id="{html.escape(block.anchor)}"' if block.anchor else ""
      out.append(f"<h{block.level}{anchor}>{html.escape(block.text)}</h{block.level}>")
    elif isinstance(block, Paragraph):
      cls = f' class="{block.cls}"' if block.cls else ""
      out.append(f"<p{cls}>{html.escape(block.text)}</p>")
    elif isinstance(block, Table):
      rows = ["<table>"]
      if block.caption:
        rows.append(f"<caption>{html.escape(block.caption)}</caption>")
      rows.append("<tr>" + "".join(_html_cell(Cell(h), "th") for h in block.headers) + "</tr>")
      rows += ["<tr>" + "".join(_html_cell(_cell(c)) for c in row) + "</tr>" for row in block.rows]
      out.append("\n".join(rows + ["</table>"]))
    elif isinstance(block, Figure):
      with open(os.path.join(out_dir, block.filename), "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
      figures.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.caption)}">'
                     f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    elif isinstance(block, Details):
      out.append(f"<details{' open' if block.open else ''}><summary>{html.escape(block.summary)}</summary>")
      out += _html_blocks(block.blocks, out_dir)
      out.append("</details>")
  flush()
  return out


def to_html(blocks: Sequence[Block], title: str, out_dir: str) -> str:
  """A self-contained page: the figures (PNG files in out_dir) embedded, no external resource."""
  body = "\n".join(_html_blocks(blocks, out_dir))
  return (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>\n"
          f"<style>{_CSS}</style>\n<script>{_SELF_CHECK}</script></head>\n<body>\n{body}\n</body></html>\n")
