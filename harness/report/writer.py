"""Writes report.md, report.html and PNG figures for a set of run records.

One run: its environment, claims, reference verdicts (if a reference file exists), metrics and figures.
Several runs (a hardware or software comparison): a metric-by-run table with the spread of each metric
and the environment of every run side by side.
"""
from __future__ import annotations

import html
import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from harness import claims as claims_lib  # pylint: disable=wrong-import-position
from harness import compare as compare_lib  # pylint: disable=wrong-import-position
from harness import atomic, environment, registry
from harness.errors import HarnessError, ReferenceFileError
from harness.metrics import summarize

MAX_CURVE_SERIES = 20


def _curve_figure(name: str, curve: Mapping[str, Any]):
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for series in curve["series"][:MAX_CURVE_SERIES]:
    label = f"seed {series['seed']}" if series["seed"] is not None else None
    ax.plot(series["x"], series["y"], label=label, lw=1)
  ax.set_xlabel(curve.get("x_label", "x"))
  ax.set_ylabel(curve.get("y_label", "y"))
  ax.set_title(name, fontsize=9)
  if any(s["seed"] is not None for s in curve["series"]):
    ax.legend(fontsize=6)
  fig.tight_layout()
  return fig


def _figures(record: Mapping[str, Any]) -> dict[str, Any]:
  figures = {}
  try:
    experiment = registry.get(record["experiment"])
  except HarnessError:
    experiment = None
  if experiment is not None and experiment.figures is not None:
    figures.update(experiment.figures(record))
  for name, curve in record.get("curves", {}).items():
    figures.setdefault("curve_" + name, _curve_figure(name, curve))
  return figures


def _save_figures(record: Mapping[str, Any], out_dir: str) -> list[str]:
  paths = []
  for name, fig in _figures(record).items():
    filename = f"{record['run_id']}__{name}".replace("/", "_") + ".png"
    fig.savefig(os.path.join(out_dir, filename), dpi=110)
    plt.close(fig)
    paths.append(filename)
  return paths


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
  esc = lambda c: str(c).replace("|", "\\|")
  return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
          + ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows])


def _single_run(record: Mapping[str, Any], out_dir: str, references_dir: str | None) -> list[str]:
  env = record["environment"]
  lines = [f"## {record['experiment']} / {record['tier']} — run `{record['run_id']}`", "",
           f"- finished {record.get('finished_at')}, wall time {record.get('wall_time_s', 0):.1f} s "
           f"(expected {record.get('expected_runtime_s', 0):.0f} s); seeds {record['seeds']}; {record['dtype']}",
           f"- {environment.one_line(env)}",
           f"- commit {env.get('git', {}).get('commit')} (dirty: {env.get('git', {}).get('dirty')})",
           "- phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in record["phases"].items()), ""]
  for d in record.get("datasets", []):
    lines.append(f"- dataset {d.get('dataset_id')} from {d.get('source')} (checksum {str(d.get('checksum'))[:16]}…)")
  lines += ["", "### Claims", ""]
  claims = compare_lib.evaluate_claims(record)
  lines += _md_table(("claim", "statement", "check", "verdict", "metrics read"),
                     [(c["name"], c["statement"], c["check"], claims_lib.verdict(c) + ": " + c["detail"],
                       _metrics_read(c)) for c in claims])
  read_by: dict[str, list[str]] = {}
  for c in claims:
    for name in c.get("metrics", []):
      read_by.setdefault(name, []).append(c["name"])
  if references_dir is not None:
    try:
      comparison = compare_lib.compare(record, references_dir)
    except ReferenceFileError as e:
      lines += ["", f"_No reference comparison: {e}_"]
    else:
      lines += ["", "### References", ""]
      lines += _md_table(("metric", "reference", "measured", "tolerance", "source", "verdict"),
                         [(r.metric, r.reference, r.measured, r.tolerance, r.provenance,
                           ("ok " if r.passed else "FAIL ") + r.detail) for r in comparison.rows])
  lines += ["", "### Metrics", ""]
  lines += _md_table(("metric", "value (mean ± sd)", "unit", "read by claims"),
                     [(name, summarize(m["values"]) if m["values"] else "-", m.get("unit", ""),
                       ", ".join(read_by.get(name, ()))) for name, m in record["metrics"].items()])
  figures = _save_figures(record, out_dir)
  if figures:
    lines += ["", "### Figures", ""] + [f"![{f}]({f})" for f in figures]
  return lines + [""]


def _metrics_read(outcome: Mapping[str, Any], shown: int = 3) -> str:
  """The metrics a claim's check read (outcomes of older records do not list them)."""
  names = outcome.get("metrics", [])
  return ", ".join(names[:shown]) + (f" (+{len(names) - shown} more)" if len(names) > shown else "")


def _multi_run(record_list: Sequence[Mapping[str, Any]]) -> list[str]:
  names = sorted({name for r in record_list for name in r["metrics"]})
  headers = ["metric"] + [f"{r['run_id']}" for r in record_list]
  rows = []
  for name in names:
    row = [name]
    for r in record_list:
      m = r["metrics"].get(name)
      row.append(summarize(m["values"]) if m and m["values"] else "-")
    rows.append(row)
  lines = ["## Side by side", ""]
  lines += _md_table(["run", "experiment/tier", "environment", "wall s"],
                     [(r["run_id"], f"{r['experiment']}/{r['tier']}", environment.one_line(r["environment"]),
                       f"{r.get('wall_time_s', 0):.1f}") for r in record_list])
  lines += [""] + _md_table(headers, rows) + [""]
  return lines


def _markdown_to_html(lines: Sequence[str]) -> str:
  """Enough Markdown for these reports: headings, bullets, pipe tables, images, emphasis-free text."""
  out, in_table, in_list = [], False, False
  for line in lines:
    if line.startswith("|"):
      cells = [c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]
      if set(line.replace("|", "").strip()) <= {"-"}:
        continue
      if not in_table:
        out.append("<table border=1 cellspacing=0 cellpadding=3>")
        tag, in_table = "th", True
      else:
        tag = "td"
      out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
      continue
    if in_table:
      out.append("</table>")
      in_table = False
    if line.startswith("- "):
      if not in_list:
        out.append("<ul>")
        in_list = True
      out.append(f"<li>{html.escape(line[2:])}</li>")
      continue
    if in_list:
      out.append("</ul>")
      in_list = False
    if line.startswith("#"):
      level = len(line) - len(line.lstrip("#"))
      out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
    elif line.startswith("!["):
      src = line[line.index("(") + 1:-1]
      out.append(f'<p><img src="{html.escape(src)}" alt="{html.escape(src)}"></p>')
    elif line:
      out.append(f"<p>{html.escape(line)}</p>")
  if in_table:
    out.append("</table>")
  if in_list:
    out.append("</ul>")
  return "<!doctype html><meta charset=utf-8><title>harness report</title>\n" + "\n".join(out) + "\n"


def write_report(record_list: Sequence[Mapping[str, Any]], out_dir: str, references_dir: str | None = None) -> str:
  """Writes report.md, report.html and figures into out_dir (refuses a folder holding a report)."""
  if os.path.exists(os.path.join(out_dir, "report.md")):
    raise HarnessError(f"{out_dir} already holds a report; choose a new --report_dir")
  os.makedirs(out_dir, exist_ok=True)
  lines = [f"# Wide-network harness report ({len(record_list)} run{'s' if len(record_list) > 1 else ''})", ""]
  if len(record_list) > 1:
    lines += _multi_run(record_list)
  for record in record_list:
    lines += _single_run(record, out_dir, references_dir)
  # report.html first: report.md marks a finished report (a folder holding one is refused above)
  atomic.write_text_atomic(os.path.join(out_dir, "report.html"), _markdown_to_html(lines))
  atomic.write_text_atomic(os.path.join(out_dir, "report.md"), "\n".join(lines))
  return os.path.join(out_dir, "report.md")


__all__ = ["write_report"]
