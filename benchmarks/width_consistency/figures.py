"""Figures of a `width_consistency` record: loss curves by width, disagreement vs width, ensembles, coordinates,
learning-rate transfer, sharpness along training, pre-activation distance vs width."""
from __future__ import annotations

from typing import Any, Mapping

from harness.families import LARGEST, records_table

from benchmarks.width_consistency import families as F


def figures(record: Mapping[str, Any]) -> dict[str, Any]:
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  out = {}
  loss = records_table(record, F.TEST_LOSS)
  if not len(loss):
    return out
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), squeeze=False)
  for ax, param in zip(axes[0], F.PARAMS):
    for (width,), table in loss.select(param=param).groups("N").items():
      x, y = table.means("step")
      ax.plot(x, y, marker=".", label=f"N = {width}")
    ax.set(xlabel="step", ylabel="test loss (mean over seeds)", title=f"{param}: loss curves by width")
    ax.legend(fontsize=7)
  fig.tight_layout()
  out["loss_curves_by_width"] = fig

  fig, axes = plt.subplots(1, 3, figsize=(15, 4), squeeze=False)
  disagreement = records_table(record, F.DISAGREEMENT).select(step=LARGEST)
  variance = records_table(record, F.OUTPUT_VARIANCE).select(step=LARGEST)
  for param in F.PARAMS:
    for ax, table, label in ((axes[0][0], disagreement, "D_N at the last step"),
                             (axes[0][1], variance, "output variance across seeds")):
      part = table.select(param=param)
      if len(part):
        x, y = part.means("N")
        ax.plot(x, y, "o-", label=param)
        ax.set(xscale="log", yscale="log", xlabel="width N", ylabel=label)
        ax.legend(fontsize=7)
    sweep = records_table(record, F.LR_SWEEP_LOSS).select(param=param)
    for (width,), table in sweep.groups("N").items():
      x, y = table.means("log2_lr")
      axes[0][2].plot(x, y, "-" if param == "mup" else "--", marker=".", label=f"{param} N = {width}")
  axes[0][2].set(xlabel="log2 base learning rate", ylabel="test loss after the sweep's steps",
                 title="learning-rate transfer")
  axes[0][2].legend(fontsize=6)
  fig.tight_layout()
  out["width_dependence"] = fig

  sharpness = records_table(record, F.SHARPNESS)
  preact = records_table(record, F.PREACT_DISTANCE)
  if len(sharpness) or len(preact):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), squeeze=False)
    for ax, param in zip(axes[0][:2], F.PARAMS):
      for (width,), table in sharpness.select(param=param).groups("N").items():
        x, y = table.means("step")
        ax.plot(x, y, marker=".", label=f"N = {width}")
      ax.axhline(1.0, color="k", lw=0.8, ls=":")
      ax.set(xlabel="step", ylabel="lr lambda_max / 2 (1: edge of stability)", yscale="log",
             title=f"{param}: sharpness along training")
      ax.legend(fontsize=7)
    for param in F.PARAMS:
      part = preact.select(param=param)
      if len(part):
        x, y = part.means("N")
        axes[0][2].plot(x, y, "o-", label=param)
    axes[0][2].set(xscale="log", yscale="log", xlabel="width N", ylabel="KS distance to the widest net",
                   title="last hidden layer's pre-activations")
    axes[0][2].legend(fontsize=7)
    fig.tight_layout()
    out["sharpness_and_preactivations"] = fig
  return out
