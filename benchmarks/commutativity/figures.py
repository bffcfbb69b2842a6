"""Figures of a `commutativity` record: the distance heat map, the three paths, Gaussianity, branch scales."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from harness.families import LARGEST, SameAs, records_table

from benchmarks.commutativity import families as F
from benchmarks.commutativity.phases import BRANCH_SCALES


def figures(record: Mapping[str, Any]) -> dict[str, Any]:
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from matplotlib import colors  # pylint: disable=import-outside-toplevel
  out = {}
  mc = records_table(record, F.MC_CORR_ERROR).select(inputs="synthetic")
  activations = mc.values("act")

  # 1. heat map of the distance over (n, L)
  if activations:
    fig, axes = plt.subplots(1, len(activations), figsize=(5 * len(activations), 4), squeeze=False)
    for ax, act in zip(axes[0], activations):
      grid = mc.select(act=act).grid("n", "L")
      widths, depths = sorted({n for n, _ in grid}), sorted({d for _, d in grid})
      z = np.array([[grid[n, d].mean if (n, d) in grid else np.nan for d in depths] for n in widths])
      image = ax.imshow(z, origin="lower", cmap="viridis", norm=colors.LogNorm(), aspect="auto")
      ax.set_xticks(range(len(depths)), depths)
      ax.set_yticks(range(len(widths)), widths)
      ax.set(xlabel="depth L", ylabel="width n", title=f"{act}: mean |c_(n,L) - c(1)| (synthetic pairs)")
      fig.colorbar(image, ax=ax)
    fig.tight_layout()
    out["distance_heatmap"] = fig

  # 2. the three paths
  width_first_all = records_table(record, F.IW_CORR_ERROR).select(inputs="synthetic")
  fig, axes = plt.subplots(1, max(1, len(activations)), figsize=(5 * max(1, len(activations)), 4), squeeze=False)
  for ax, act in zip(axes[0], activations):
    width_first = width_first_all.select(act=act)
    if len(width_first):
      x, y = width_first.means("L")
      ax.plot(x, y, "o-", label="width first (n = inf), vs L")
      ax.plot(x, [y[-1] * x[-1] / v for v in x], "k:", lw=0.8, label="slope -1")
    deepest = mc.select(act=act, L=LARGEST)
    joint = mc.select(act=act, L=SameAs("n"))
    for table, style, label in ((deepest, "s-", f"depth first (L = {max(mc.values('L'))}), vs n"),
                                (joint, "^-", "joint n = L, vs n")):
      if len(table):
        x, y = table.means("n")
        ax.plot(x, y, style, label=label)
    if len(deepest):
      x, y = deepest.means("n")
      ax.plot(x, [y[0] * (v / x[0]) ** -0.5 for v in x], "k--", lw=0.8, label="slope -1/2")
    ax.set(xscale="log", yscale="log", xlabel="size (L or n)", ylabel="mean |c - c(1)|", title=f"{act}: three paths")
    ax.legend(fontsize=7)
  fig.tight_layout()
  out["paths_to_the_limit"] = fig

  # 3. Gaussianity vs n
  gauss = records_table(record, F.GAUSS_KURTOSIS)
  gauss_acts = gauss.values("act")
  if gauss_acts:
    fig, axes = plt.subplots(1, len(gauss_acts), figsize=(5 * len(gauss_acts), 4), squeeze=False)
    for ax, act in zip(axes[0], gauss_acts):
      for (depth,), table in gauss.select(act=act).groups("L").items():
        points = table.series("n")
        ax.errorbar([n for n, _ in points], [m.mean for _, m in points],
                    yerr=[m.std / math.sqrt(max(m.n, 1)) for _, m in points], marker="o", capsize=3,
                    label=f"L = {depth}")
      ax.set(xscale="log", yscale="symlog", xlabel="width n", ylabel="excess kurtosis of Y_L (one neuron)",
             title=f"{act}: Gaussianity vs width (± s.e. over seeds)")
      ax.axhline(0, color="k", lw=0.5)
      ax.legend(fontsize=7)
    fig.tight_layout()
    out["gaussianity_vs_width"] = fig

  # 4. branch-scale contrast at infinite width
  tables = [records_table(record, family) for family in (F.IW_VAR_RATIO, F.IW_MEAN_CORR)]
  contrast_acts = tables[0].values("act")
  if contrast_acts:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for act in contrast_acts:
      for scale, style in zip(BRANCH_SCALES, ("-", "--", ":")):
        for ax, table in zip(axes, tables):
          series = table.select(act=act, scale=scale)
          if len(series):
            x, y = series.means("L")
            ax.plot(x, y, style, marker=".", label=f"{act}, s = {scale}")
    axes[0].set(xscale="log", yscale="log", xlabel="depth L", ylabel="q_L / q_0", title="variance (n = inf)")
    axes[1].set(xscale="log", xlabel="depth L", ylabel="mean c_L over the synthetic pairs", title="correlation (n = inf)")
    for ax in axes:
      ax.legend(fontsize=6)
    fig.tight_layout()
    out["branch_scale_contrast"] = fig
  return out
