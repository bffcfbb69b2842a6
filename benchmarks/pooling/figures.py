"""Figures of a `pooling` record: the NTK depth profiles by phase, and test accuracy by architecture."""
from __future__ import annotations

from typing import Any, Mapping

from harness.families import records_table

from benchmarks.pooling import families as F


def _profiles(record: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
  """(legend label, line style, table) per network: the FCN on the colab's images, FCN and CNNs on the small ones."""
  out = [("fcn", ":", records_table(record, F.FCN_PROFILE))]
  small = records_table(record, F.SMALL_FCN_PROFILE)
  for (px,), table in small.groups("px").items():
    out.append((f"fcn_{px}px", ":", table))
  for (arch, px), table in records_table(record, F.CNN_PROFILE).groups("arch", "px").items():
    out.append((f"{arch}_circular_{px}px", "--" if arch == "cnn_flatten" else "-", table))
  return out


def figures(record: Mapping[str, Any]) -> dict[str, Any]:
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  out = {}
  # One panel per (quantity, phase): the FCN on the colab's 32x32 images, and FCN / CNN-Flatten / CNN-GAP
  # (circular) on the downsampled ones, where CNN-Flatten should lie on its FCN and CNN-GAP away from it.
  quantities = (("ntk_condition_number", "NTK condition number"), ("ntk_mean_predictor_rms", "NTK mean predictor (rms)"))
  profiles = _profiles(record)
  fig, axes = plt.subplots(2, 3, figsize=(13, 7), squeeze=False)
  for row, (quantity, label) in enumerate(quantities):
    for col, phase in enumerate(F.PHASES):
      ax = axes[row][col]
      for name, style, table in profiles:
        series = table.select(quantity=quantity, phase=phase)
        if len(series):
          x, y = series.means("depth")
          ax.plot(x, y, style, marker=".", label=name)
      ax.set(xscale="log", yscale="log", xlabel="depth", ylabel=label, title=f"Erf, {phase} phase")
      ax.legend(fontsize=6)
  fig.tight_layout()
  out["ntk_depth_profile"] = fig

  bars = []
  for row in records_table(record, F.KERNEL_SCORE).select(score="acc"):
    bars.append((f"kernel_{row.labels['kernel']}/{row.labels['arch']}", row.metric))
  for row in records_table(record, F.KERNEL_SCORE_BY_DEPTH).select(score="acc"):
    bars.append((f"kernel_{row.labels['kernel']}/{row.labels['arch']}/depth={row.labels['depth']}", row.metric))
  for row in records_table(record, F.FINITE_SCORE).select(split="test", score="acc"):
    bars.append((f"finite/{row.labels['arch']}", row.metric))
  if bars:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    bars.sort(key=lambda bar: bar[0])
    ax.barh(range(len(bars)), [m.mean for _, m in bars], xerr=[m.std for _, m in bars])
    ax.set_yticks(range(len(bars)), [name for name, _ in bars], fontsize=6)
    ax.set_xlabel("test accuracy (mean ± sd over seeds)")
    fig.tight_layout()
    out["accuracy_by_architecture"] = fig
  return out
