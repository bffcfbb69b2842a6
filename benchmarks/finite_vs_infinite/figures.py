"""Figures of a `finite_vs_infinite` record: each rate against width on log-log axes with its fitted line and the
theory slope; the performance gap per architecture and setting; float32 / float64 kernel regression by n_train."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from harness.families import records_table

from benchmarks.finite_vs_infinite import claims as C
from benchmarks.finite_vs_infinite import families as F

_WINDOW = C.ASYMPTOTIC_WIDTHS
_RATES = (  # (title, family, selection, theory slope, widest widths fitted as the claims do; 0: all)
    ("initial NTK: one net vs analytic", F.NTK_INIT_DISTANCE, {}, -0.5, 0),
    ("NTK change during training", F.NTK_CHANGE, {}, -1.0, _WINDOW),
    ("outputs vs kernel flow from own f_0", F.OUTPUT_DISTANCE, {"setting": "small_lr", "model": "single_own_init"}, -0.5,
     _WINDOW),
    ("centered outputs vs kernel mean", F.OUTPUT_DISTANCE, {"setting": "small_lr", "model": "centered"}, -0.5, _WINDOW),
    ("ensemble output bias^2 (pairs)", F.OUTPUT_BIAS_SQ, {}, -2.0, _WINDOW),
    ("initial NTK bias^2 (pairs)", F.NTK_INIT_BIAS_SQ, {}, -2.0, _WINDOW),
)


def _rates(record, plt):
  fig, axes = plt.subplots(2, 3, figsize=(14, 8), squeeze=False)
  for ax, (title, family, where, theory, last) in zip(axes.ravel(), _RATES):
    table = records_table(record, family).select(**where)
    if not len(table):
      ax.set_title(f"{title}: not measured at this tier", fontsize=8)
      ax.axis("off")
      continue
    for (arch,), group in table.groups("arch").items():
      n, means = group.means("n")
      n, means = np.asarray(n, float), np.asarray(means, float)
      errors = [m.std / np.sqrt(max(m.n, 1)) for _, m in group.series("n")]
      line = ax.errorbar(n, np.where(means > 0, means, np.nan), yerr=errors, marker="o", ls="", label=arch)
      window = np.arange(len(n)) >= (len(n) - last if last else 0)
      fit = window & (means > 0)
      if fit.sum() >= 2:
        slope, intercept = np.polyfit(np.log(n[fit]), np.log(means[fit]), 1)
        ax.plot(n[fit], np.exp(intercept) * n[fit] ** slope, color=line[0].get_color(), lw=1,
                label=f"{arch} fit {slope:.2f}")
        ax.plot(n[fit], means[fit][0] * (n[fit] / n[fit][0]) ** theory, color="gray", ls=":", lw=1)
    window = f"widest {last}" if last else "all widths"
    ax.set(xscale="log", yscale="log", xlabel="width n")
    ax.set_title(f"{title}\n(fit over {window}; dotted: slope {theory:g})", fontsize=9)
    ax.legend(fontsize=6)
  fig.tight_layout()
  return fig


def _gaps(record, plt):
  table = records_table(record, F.PERFORMANCE_GAP).select(score="acc", model="centered")
  groups = table.groups("arch")
  if not groups:
    return None
  fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.5), squeeze=False)
  for ax, ((arch,), group) in zip(axes[0], groups.items()):
    for (setting,), rows in group.groups("setting").items():
      n, means = rows.means("n")
      ax.errorbar(n, means, yerr=[m.std for _, m in rows.series("n")], marker="o", label=setting)
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set(xscale="log", xlabel="width n", ylabel="finite - NTK test accuracy", title=f"{arch}, centered nets")
    ax.legend(fontsize=7)
  fig.tight_layout()
  return fig


def _precision(record, plt):
  acc = records_table(record, F.PRECISION_ACC)
  if not len(acc):
    return None
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
  for (kernel, precision), rows in acc.groups("kernel", "precision").items():
    n, means = rows.means("n")
    left.plot(n, means, marker="o", ls="-" if precision == "float64" else "--", label=f"{kernel} {precision}")
  left.set(xscale="log", xlabel="n_train", ylabel="test accuracy (ridgeless)", title="kernel regression")
  left.legend(fontsize=7)
  for (kernel,), rows in records_table(record, F.PRECISION_ERROR).groups("kernel").items():
    n, means = rows.means("n")
    right.plot(n, means, marker="o", label=kernel)
  right.axhline(0.01, color="gray", ls=":", lw=1)
  right.set(xscale="log", yscale="log", xlabel="n_train", ylabel="|mu_32 - mu_64| / |mu_64|",
            title="float32 prediction error (dotted: breakdown)")
  right.legend(fontsize=7)
  fig.tight_layout()
  return fig


def figures(record: Mapping[str, Any]) -> dict[str, Any]:
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  out = {"rates_in_width": _rates(record, plt)}
  for name, make in (("performance_gap", _gaps), ("precision", _precision)):
    fig = make(record, plt)
    if fig is not None:
      out[name] = fig
  return out


__all__ = ["figures"]
