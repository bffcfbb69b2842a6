"""The claims of `finite_vs_infinite` over its families, with the tolerances they are checked by.

Slope tolerances (log-log slopes against width n, fitted to seed means with a bootstrap interval over seeds):
- fluctuations, n^(-1/2) (one net's empirical NTK at initialisation, one net's outputs against the kernel's
  gradient flow from its own initial function, centered nets against the kernel's mean): the squared distance is
  v/n + b^2/n^2 + O(n^-3), so the slope of the distance is -1/2 - (b^2/v)/(2n) + ..., pulled below -1/2 at narrow
  widths by the bias term; the tolerance +-0.15 (the issue's) holds that term and the seed spread of the small
  tier (bootstrap intervals of +-0.05-0.1).
- 1/n quantities: the change of the empirical NTK during training (Dyer & Gur-Ari 2019, arXiv 1909.11304: dTheta/dt
  = O(1/n) in the NTK parameterisation; Lee et al. 2019, arXiv 1902.06720, bound it by n^(-1/2)) has slope -1 +-
  0.25; the squared bias of the ensemble-mean output (Andreassen & Dyer 2020, arXiv 2008.08675: finite-width
  corrections to the mean are O(1/n)) has slope -2 +- 0.5 (the same tolerance on the bias's own exponent).
Every slope claim also needs its whole confidence interval below 0.
"""
from __future__ import annotations

import math

import numpy as np

from harness import claims, stats
from harness.families import LARGEST

from benchmarks.finite_vs_infinite import families as F

FLUCTUATION_SLOPE = (-0.65, -0.35)
NTK_CHANGE_SLOPE = (-1.25, -0.75)
BIAS_SQ_SLOPE = (-2.5, -1.5)
ALPHA = 0.01                 # one-sided Welch tests of the departure and gap claims
DEPARTURE_FACTOR = 2.0       # large rate / weight decay: at least this many times the small rate's distance
# The initial NTK's ensemble bias is subleading: its squared size (upper end of the 95% interval of the pair mean)
# stays below this fraction of a single net's squared distance at every width of the bias study.
NTK_BIAS_FRACTION = 0.1
RESOLVING_TIERS = ("small", "paper")


def _slope(family, interval, where, per=("arch",)):
  """The slope in `interval` and its interval below 0, both from the bootstrap over seeds."""
  return claims.AllOf((claims.PowerLawSlope(family, x="n", interval=interval, where=where, per=per, method="bootstrap"),
                       claims.PowerLawSlope(family, x="n", interval=(-math.inf, 0.0), where=where, per=per,
                                            method="bootstrap", ci_inside=True)))


def _mean_distance(view, family, **labels) -> dict[tuple[str, int], object]:
  """{(arch, n): metric} of a distance family under `labels`."""
  return {(row.labels["arch"], row.labels["n"]): row.metric for row in view.of(family).select(**labels)}


def _ensembling_and_centering_help(view) -> tuple[bool, str]:
  single = _mean_distance(view, F.OUTPUT_DISTANCE, setting="small_lr", model="single")
  centered = _mean_distance(view, F.OUTPUT_DISTANCE, setting="small_lr", model="centered")
  ensemble = _mean_distance(view, F.ENSEMBLE_DISTANCE, setting="small_lr", model="ensemble")
  centered_ensemble = _mean_distance(view, F.ENSEMBLE_DISTANCE, setting="small_lr", model="centered_ensemble")
  if not single:
    raise claims.MissingMetric("no small-rate output distances")
  widest = {}
  for arch, n in single:
    widest[arch] = max(n, widest.get(arch, n))
  bad, worst = [], 0.0
  for key, one in ((key, one) for key, one in single.items() if key[1] == widest[key[0]]):
    if key not in centered or key not in ensemble or key not in centered_ensemble:
      raise claims.MissingMetric(f"{key}: missing centered or ensemble distances")
    steps = (ensemble[key].mean / one.mean, centered[key].mean / one.mean,
             centered_ensemble[key].mean / centered[key].mean)
    worst = max(worst, *steps)
    if max(steps) >= 1.0:
      bad.append(f"{key[0]} n={key[1]}: ensemble/single {steps[0]:.3f}, centered/single {steps[1]:.3f}, "
                 f"centered ensemble/centered {steps[2]:.3f}")
  return not bad, "; ".join(bad) if bad else (f"widest nets of {len(widest)} architectures; the largest of the ratios "
                                               f"ensemble/single, centered/single, centered ensemble/centered: {worst:.3f}")


def _departs(setting: str):
  def check(view) -> tuple[bool, str]:
    table = view.of(F.OUTPUT_DISTANCE)
    gaps = view.of(F.PERFORMANCE_GAP)
    results = []
    for (arch,), group in table.select(model="centered").groups("arch").items():
      widest = max(group.values("n"))
      if not len(group.select(setting=setting)):
        raise claims.MissingMetric(f"no {setting} distances for {arch}")
      other = group.one(setting=setting, n=widest)
      small = group.one(setting="small_lr", n=widest)
      test = stats.welch_t_test(other.values, [DEPARTURE_FACTOR * v for v in small.values], alternative="greater")
      acc_gap = gaps.one(score="acc", arch=arch, setting=setting, model="centered", n=widest).mean
      ok = test.p_value < ALPHA
      results.append((ok, f"{arch} n={widest}: {other.mean:.3g} vs small rate {small.mean:.3g} "
                          f"(p={test.p_value:.2g}); accuracy gap to the NTK {acc_gap:+.3f}"))
    return claims._all(results)  # pylint: disable=protected-access
  return check


def _gap_vanishes(view) -> tuple[bool, str]:
  """|test MSE gap| of centered nets at the widest width below that at the narrowest (one-sided Welch)."""
  results = []
  for (arch,), group in view.of(F.PERFORMANCE_GAP).select(score="mse", setting="small_lr",
                                                           model="centered").groups("arch").items():
    widths = sorted(group.values("n"))
    narrow, wide = group.one(n=widths[0]), group.one(n=widths[-1])
    test = stats.welch_t_test(np.abs(narrow.values), np.abs(wide.values), alternative="greater")
    results.append((test.p_value < ALPHA, f"{arch}: |MSE gap| n={widths[0]} {np.mean(np.abs(narrow.values)):.3g} "
                                          f"-> n={widths[-1]} {np.mean(np.abs(wide.values)):.3g} "
                                          f"(signed {wide.mean:+.3g}; p={test.p_value:.2g})"))
  return claims._all(results)  # pylint: disable=protected-access


def _ntk_bias_subleading(view) -> tuple[bool, str]:
  distance = view.of(F.NTK_INIT_DISTANCE)
  results = []
  for row in view.of(F.NTK_INIT_BIAS_SQ):
    arch, n = row.labels["arch"], row.labels["n"]
    single = distance.select(arch=arch, n=n)
    if not len(single):
      raise claims.MissingMetric(f"no ntk_init_distance for {arch} n={n}")
    squared = float(np.mean(np.square(single.one().values)))
    values = np.asarray(row.metric.values)
    upper = float(values.mean() + 1.96 * values.std(ddof=1) / math.sqrt(values.size))
    results.append((upper < NTK_BIAS_FRACTION * squared,
                    f"{arch} n={n}: bias^2 {values.mean():.2g} (upper {upper:.2g}) vs single^2 {squared:.3g}"))
  return claims._all(results)  # pylint: disable=protected-access


def _float32_breaks_where_float64_holds(view) -> tuple[bool, str]:
  results = []
  for (kernel,), group in view.of(F.PRECISION_ACC).groups("kernel").items():
    size = view.get(F.FLOAT32_BREAKDOWN.at(kernel=kernel)).mean
    largest = max(group.values("n"))
    acc64, acc32 = (group.one(precision=p, n=largest).mean for p in ("float64", "float32"))
    results.append((acc64 >= acc32, f"{kernel}: float32 error reaches 1% at n_train ~{size:.0f}; at {largest}: "
                                    f"accuracy float64 {acc64:.3f}, float32 {acc32:.3f}"))
  return claims._all(results)  # pylint: disable=protected-access


def _nngp_vs_ntk(view) -> tuple[bool, str]:
  table = view.of(F.KERNEL_SCORE).select(score="acc", when="converged")
  rows, wins = [], 0
  for (arch,), group in table.groups("arch").items():
    nngp, ntk = group.one(kernel="nngp").mean, group.one(kernel="ntk").mean
    wins += nngp >= ntk
    rows.append(f"{arch} NNGP {nngp:.3f} vs NTK {ntk:.3f}")
  return 2 * wins >= len(rows), f"NNGP >= NTK in {wins} of {len(rows)}: " + "; ".join(rows)


_SMALL = {"setting": "small_lr"}

CLAIMS = (
    claims.Claim("ntk_fluctuations_shrink_as_inverse_sqrt_width",
                 "one net's empirical NTK at initialisation differs from the analytic NTK by O(n^-1/2) (a sum over n "
                 "independent units, central limit theorem): slope -0.5 +- 0.15",
                 _slope(F.NTK_INIT_DISTANCE, FLUCTUATION_SLOPE, {}), tiers=RESOLVING_TIERS),
    claims.Claim("ntk_bias_is_subleading",
                 "the seed-averaged initial NTK is much closer to the analytic NTK than one net's (its bias is O(1/n) "
                 "against O(n^-1/2) fluctuations, and for ReLU its diagonal has no 1/n correction at all: 2508.11522 "
                 f"abstract): squared bias below {NTK_BIAS_FRACTION:g} of the squared single-net "
                 "distance at every width of the bias study",
                 claims.Predicate("upper 95% end of the pair-mean squared bias < fraction x mean squared distance",
                                  _ntk_bias_subleading, reads=(F.NTK_INIT_BIAS_SQ, F.NTK_INIT_DISTANCE)),
                 tiers=RESOLVING_TIERS),
    claims.Claim("ntk_change_shrinks_as_inverse_width",
                 "the empirical NTK moves by O(1/n) during training at a small rate (1909.11304, whose abstract claims "
                 "improved bounds on wide-network evolution; rate not checked against its text): slope -1 +- 0.25",
                 _slope(F.NTK_CHANGE, NTK_CHANGE_SLOPE, {}), tiers=RESOLVING_TIERS),
    claims.Claim("outputs_follow_the_kernel_flow_within_inverse_sqrt_width",
                 "a net trained by gradient descent at a small rate stays within O(n^-1/2) of the NTK's gradient flow "
                 "from its own initial function (1902.06720: wide nets evolve as their linearisation)",
                 _slope(F.OUTPUT_DISTANCE, FLUCTUATION_SLOPE, {**_SMALL, "model": "single_own_init"}),
                 tiers=RESOLVING_TIERS),
    claims.Claim("centered_nets_approach_the_kernel_mean",
                 "centered nets f_t - f_0 approach the NTK's gradient-flow mean as n^-1/2 (the same argument: f_t - f_0 "
                 "is the linearised net's flow from zero, with the empirical instead of the analytic NTK)",
                 _slope(F.OUTPUT_DISTANCE, FLUCTUATION_SLOPE, {**_SMALL, "model": "centered"}),
                 tiers=RESOLVING_TIERS),
    claims.Claim("ensemble_bias_shrinks_as_inverse_width",
                 "the seed-ensemble's mean output differs from the kernel's by O(1/n) (2008.08675): squared bias "
                 "slope -2 +- 0.5",
                 _slope(F.OUTPUT_BIAS_SQ, BIAS_SQ_SLOPE, {}), tiers=RESOLVING_TIERS),
    claims.Claim("performance_gap_vanishes_at_small_rate",
                 "at the small rate the test-MSE gap between centered finite nets and the NTK shrinks with width, for "
                 "every architecture (2008.08675; 2007.15801)",
                 claims.Predicate("|gap| at the widest width below that at the narrowest, one-sided Welch "
                                  f"alpha={ALPHA:g}", _gap_vanishes, reads=(F.PERFORMANCE_GAP,)),
                 tiers=RESOLVING_TIERS),
    claims.Claim("ensembling_and_centering_approach_the_kernel",
                 "ensembling and centering bring finite nets closer to the NTK's gradient-flow mean (2007.15801: "
                 "'centered and ensembled finite networks ... behave more similarly to infinite networks')",
                 claims.Predicate("at each architecture's widest width (narrow nets are far from the kernel regime: "
                                  "at 8 channels a centered CNN-GAP is further from the kernel than an uncentered one): "
                                  "ensemble < single, centered < single, centered ensemble < centered (mean distances)",
                                  _ensembling_and_centering_help,
                                  reads=(F.OUTPUT_DISTANCE, F.ENSEMBLE_DISTANCE))),
    claims.Claim("large_rate_leaves_the_kernel",
                 "above the kernel's critical rate, finite nets leave the kernel's prediction (2007.15801 abstract: 'the "
                 "use of a large learning rate break[s] the correspondence'; the accuracy gap's sign is reported)",
                 claims.Predicate(f"at the widest width, centered distance > {DEPARTURE_FACTOR:g} x the small rate's "
                                  f"(one-sided Welch alpha={ALPHA:g})", _departs("large_lr"),
                                  reads=(F.OUTPUT_DISTANCE, F.PERFORMANCE_GAP)),
                 tiers=RESOLVING_TIERS),
    claims.Claim("weight_decay_leaves_the_kernel",
                 "with weight decay, finite nets leave the kernel's prediction (2007.15801 abstract: 'weight decay ... "
                 "break[s] the correspondence'; sign reported)",
                 claims.Predicate(f"at the widest width, centered distance > {DEPARTURE_FACTOR:g} x the small rate's "
                                  f"(one-sided Welch alpha={ALPHA:g})", _departs("weight_decay"),
                                  reads=(F.OUTPUT_DISTANCE, F.PERFORMANCE_GAP)),
                 tiers=RESOLVING_TIERS),
    claims.Claim("float32_error_grows_with_training_set",
                 "float32 kernel regression loses precision as the training set grows (2007.15801 abstract: 'floating "
                 "point precision limits kernel performance beyond a critical dataset size'): the "
                 "float32 prediction error's slope in n_train is positive (CI above 0)",
                 claims.PowerLawSlope(F.PRECISION_ERROR, x="n", interval=(0.0, math.inf), per=("kernel",),
                                      ci_inside=True), tiers=RESOLVING_TIERS),
    claims.Claim("float64_holds_where_float32_breaks",
                 "float64 stays accurate where float32 breaks down: float32's prediction error reaches 1% within the "
                 "tier's training sizes (the size recorded) and float64's accuracy there is at least float32's",
                 claims.Predicate("breakdown size recorded; float64 accuracy >= float32 at the largest n_train",
                                  _float32_breaks_where_float64_holds, reads=(F.PRECISION_ACC, F.FLOAT32_BREAKDOWN)),
                 tiers=RESOLVING_TIERS),
    claims.Claim("nngp_often_beats_ntk",
                 "the NNGP often outperforms the NTK in kernel regression (2007.15801 abstract: 'NNGP kernels frequently "
                 "outperform neural tangent (NT) kernels'): NNGP >= NTK test "
                 "accuracy for at least half the architectures",
                 claims.Predicate("NNGP >= NTK (ridge, diag_reg on validation) in >= half the architectures",
                                  _nngp_vs_ntk, reads=(F.KERNEL_SCORE,)),
                 tiers=("paper",)),
)
