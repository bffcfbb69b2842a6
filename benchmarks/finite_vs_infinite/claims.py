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
Every slope claim also needs its whole confidence interval below 0, and is fitted over each architecture's
ASYMPTOTIC_WIDTHS widest widths: the rates are statements about n -> inf, and the narrow nets are outside the lazy
regime (measured, small tier: the empirical NTK moves by 86-96% of its norm during training at 8 channels, 59% for
the FCN at 64 units, against 6-15% at the widest widths).
CNN-Flatten stays far from the kernel regime at the small tier's widths (its NTK still moves by 37% at 128 channels;
measured NTK-change slope -0.54 and centered-distance slope -0.19 over 32-128 channels), so its training-dynamics
rates are asserted at the paper tier (to 512 channels); its initial-NTK and own-init rates are asserted everywhere.
The ensemble biases (1/n) need many seeds at wide widths (phases.paired_bias_sq's noise: measured on the FCN with
16 pairs, +-0.03 at 128 units against a squared bias of about 0.05 there and 0.01 at 256): asserted at the paper
tier, with 256 seeds.
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
ALPHA = 0.01                 # one-sided tests of the departure (Welch) and gap (Kendall trend) claims
# The initial NTK's ensemble bias is subleading: its squared size (upper end of the 95% interval of the pair mean)
# stays below this fraction of a single net's squared distance at every width of the bias study.
NTK_BIAS_FRACTION = 0.1
RESOLVING_TIERS = ("small", "paper")
ASYMPTOTIC_WIDTHS = 3
LAZY_AT_SMALL = ("fcn", "cnn_gap", "resnet")   # in the lazy regime at the small tier's widest widths
FLOAT64_ERROR_BOUND = 1e-6   # kappa x eps_64 (Higham 2002, Thm 7.2: relative forward error <= kappa eps / (1 - kappa eps))
EPS64 = 2.0 ** -52


def _slope(family, interval, where, per=("arch",), last=ASYMPTOTIC_WIDTHS):
  """The slope in `interval` and its interval below 0, both from the bootstrap over seeds, over the widest widths."""
  common = dict(x="n", where=where, per=per, method="bootstrap", last=last)
  return claims.AllOf((claims.PowerLawSlope(family, interval=interval, **common),
                       claims.PowerLawSlope(family, interval=(-math.inf, 0.0), ci_inside=True, **common)))


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
      test = stats.welch_t_test(other.values, small.values, alternative="greater")
      acc_gap = gaps.one(score="acc", arch=arch, setting=setting, model="centered", n=widest).mean
      ok = test.p_value < ALPHA
      results.append((ok, f"{arch} n={widest}: {other.mean:.3g} vs small rate {small.mean:.3g} "
                          f"(p={test.p_value:.2g}); accuracy gap to the NTK {acc_gap:+.3f}"))
    return claims._all(results)  # pylint: disable=protected-access
  return check


def _gap_vanishes(view) -> tuple[bool, str]:
  """|test MSE gap| of centered nets falls with width: Kendall's tau of (n, |gap|) over every width and seed, one-sided
  (a rank trend test: the gaps span orders of magnitude and a narrow net's occasional large miss would swamp a test
  of means)."""
  from scipy import stats as scipy_stats  # pylint: disable=import-outside-toplevel
  results = []
  for (arch,), group in view.of(F.PERFORMANCE_GAP).select(score="mse", setting="small_lr",
                                                           model="centered").groups("arch").items():
    widths, gaps = [], []
    for n, metric in group.series("n"):
      widths += [n] * metric.n
      gaps += list(np.abs(metric.values))
    tau = scipy_stats.kendalltau(widths, gaps, alternative="less")
    narrow, wide = group.one(n=min(widths)), group.one(n=max(widths))
    results.append((tau.pvalue < ALPHA, f"{arch}: |MSE gap| n={min(widths)} {np.mean(np.abs(narrow.values)):.3g} -> "
                                        f"n={max(widths)} {np.mean(np.abs(wide.values)):.3g} (signed {wide.mean:+.3g}); "
                                        f"Kendall tau {tau.statistic:.2f}, p={tau.pvalue:.2g}"))
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
  """Some kernel's float32 predictions reach the breakdown error within the tier's sizes; there float64's relative
  error bound kappa eps_64 (kappa from the float64 kernel at the largest size) stays below FLOAT64_ERROR_BOUND."""
  results, broken = [], 0
  for (kernel,), group in view.of(F.PRECISION_ERROR).groups("kernel").items():
    largest = max(group.values("n"))
    error32 = group.one(n=largest).mean
    kappa = view.get(F.CONDITION_NUMBER.at(kernel=kernel, n=largest)).mean
    breakdown = view.of(F.FLOAT32_BREAKDOWN).select(kernel=kernel)
    if not len(breakdown):
      results.append((True, f"{kernel}: float32 error {error32:.2g} at n_train={largest}, below the breakdown"))
      continue
    broken += 1
    bound = kappa * EPS64
    results.append((bound < FLOAT64_ERROR_BOUND,
                    f"{kernel}: float32 breaks down at n_train ~{breakdown.one().mean:.0f} (error {error32:.2g} at "
                    f"{largest}); float64 bound kappa eps = {bound:.2g}"))
  ok, detail = claims._all(results)  # pylint: disable=protected-access
  return ok and broken > 0, detail + ("" if broken else "; float32 broke down for no kernel")


def _nngp_vs_ntk(view) -> tuple[bool, str]:
  table = view.of(F.KERNEL_SCORE).select(score="acc", when="converged")
  rows, wins = [], 0
  for (arch,), group in table.groups("arch").items():
    nngp, ntk = group.one(kernel="nngp").mean, group.one(kernel="ntk").mean
    wins += nngp >= ntk
    rows.append(f"{arch} NNGP {nngp:.3f} vs NTK {ntk:.3f}")
  return 2 * wins >= len(rows), f"NNGP >= NTK in {wins} of {len(rows)}: " + "; ".join(rows)


def _departure(name: str, setting: str, statement: str) -> claims.Claim:
  return claims.Claim(name, statement,
                      claims.Predicate("at the widest width, centered nets further from the kernel's mean than at the "
                                       f"small rate (one-sided Welch alpha={ALPHA:g})", _departs(setting),
                                       reads=(F.OUTPUT_DISTANCE, F.PERFORMANCE_GAP)),
                      tiers=RESOLVING_TIERS)


_SMALL = {"setting": "small_lr"}

CLAIMS = (
    claims.Claim("ntk_fluctuations_shrink_as_inverse_sqrt_width",
                 "one net's empirical NTK at initialisation differs from the analytic NTK by O(n^-1/2) (a sum over n "
                 "independent units, central limit theorem): slope -0.5 +- 0.15 over every width (at initialisation "
                 "there is no lazy regime to wait for)",
                 _slope(F.NTK_INIT_DISTANCE, FLUCTUATION_SLOPE, {}, last=0), tiers=RESOLVING_TIERS),
    claims.Claim("ntk_bias_is_subleading",
                 "the seed-averaged initial NTK is much closer to the analytic NTK than one net's (its bias is O(1/n) "
                 "against O(n^-1/2) fluctuations, and for ReLU its diagonal has no 1/n correction at all: 2508.11522 "
                 f"abstract): squared bias below {NTK_BIAS_FRACTION:g} of the squared single-net "
                 "distance at every width of the bias study",
                 claims.Predicate("upper 95% end of the pair-mean squared bias < fraction x mean squared distance",
                                  _ntk_bias_subleading, reads=(F.NTK_INIT_BIAS_SQ, F.NTK_INIT_DISTANCE)),
                 tiers=("paper",)),
    claims.Claim("ntk_change_shrinks_as_inverse_width",
                 "the empirical NTK moves by O(1/n) during training at a small rate (1909.11304, whose abstract claims "
                 "improved bounds on wide-network evolution; rate not checked against its text): slope -1 +- 0.25",
                 _slope(F.NTK_CHANGE, NTK_CHANGE_SLOPE, {"arch": LAZY_AT_SMALL}), tiers=RESOLVING_TIERS),
    claims.Claim("cnn_flatten_ntk_change_shrinks_as_inverse_width",
                 "the same for CNN-Flatten, whose NTK still moves by 37% at the small tier's 128 channels (module "
                 "docstring): asserted at the paper tier",
                 _slope(F.NTK_CHANGE, NTK_CHANGE_SLOPE, {"arch": "cnn_flatten"}), tiers=("paper",)),
    claims.Claim("outputs_follow_the_kernel_flow_within_inverse_sqrt_width",
                 "a net trained by gradient descent at a small rate stays within O(n^-1/2) of the NTK's gradient flow "
                 "from its own initial function (1902.06720: wide nets evolve as their linearisation)",
                 _slope(F.OUTPUT_DISTANCE, FLUCTUATION_SLOPE, {**_SMALL, "model": "single_own_init"}),
                 tiers=RESOLVING_TIERS),
    claims.Claim("centered_nets_approach_the_kernel_mean",
                 "centered nets f_t - f_0 approach the NTK's gradient-flow mean as n^-1/2 (the same argument: f_t - f_0 "
                 "is the linearised net's flow from zero, with the empirical instead of the analytic NTK)",
                 _slope(F.OUTPUT_DISTANCE, FLUCTUATION_SLOPE, {**_SMALL, "model": "centered", "arch": LAZY_AT_SMALL}),
                 tiers=RESOLVING_TIERS),
    claims.Claim("cnn_flatten_centered_nets_approach_the_kernel_mean",
                 "the same for CNN-Flatten (far from the kernel regime at 128 channels): asserted at the paper tier",
                 _slope(F.OUTPUT_DISTANCE, FLUCTUATION_SLOPE, {**_SMALL, "model": "centered", "arch": "cnn_flatten"}),
                 tiers=("paper",)),
    claims.Claim("ensemble_bias_shrinks_as_inverse_width",
                 "the seed-ensemble's mean output differs from the kernel's by O(1/n) (2008.08675): squared bias "
                 "slope -2 +- 0.5",
                 _slope(F.OUTPUT_BIAS_SQ, BIAS_SQ_SLOPE, {}), tiers=("paper",)),
    claims.Claim("performance_gap_vanishes_at_small_rate",
                 "at the small rate the test-MSE gap between centered finite nets and the NTK shrinks with width, for "
                 "every architecture (2008.08675; 2007.15801)",
                 claims.Predicate("|gap| falls with width: one-sided Kendall rank trend over every width and seed, "
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
    _departure("large_rate_leaves_the_kernel", "large_lr",
               "above the kernel's critical rate, finite nets leave the kernel's prediction (2007.15801 abstract: "
               "'the use of a large learning rate break[s] the correspondence'; the accuracy gap's sign is reported)"),
    _departure("weight_decay_leaves_the_kernel", "weight_decay",
               "with weight decay, finite nets leave the kernel's prediction (2007.15801 abstract: 'weight decay ... "
               "break[s] the correspondence'; sign reported)"),
    claims.Claim("float32_error_grows_with_training_set",
                 "float32 kernel regression loses precision as the training set grows (2007.15801 abstract: 'floating "
                 "point precision limits kernel performance beyond a critical dataset size'): the "
                 "float32 prediction error's slope in n_train is positive (CI above 0)",
                 claims.PowerLawSlope(F.PRECISION_ERROR, x="n", interval=(0.0, math.inf), per=("kernel",),
                                      ci_inside=True), tiers=RESOLVING_TIERS),
    claims.Claim("float64_holds_where_float32_breaks",
                 "float64 stays accurate where float32 breaks down: float32's test predictions move by 1% (phases."
                 "BREAKDOWN_ERROR) within the tier's training sizes for some kernel (the size recorded), where "
                 "float64's relative error is bounded by kappa eps_64 (the accuracies of both are recorded)",
                 claims.Predicate(f"breakdown size recorded for >= 1 kernel; kappa eps_64 < {FLOAT64_ERROR_BOUND:g} there",
                                  _float32_breaks_where_float64_holds,
                                  reads=(F.PRECISION_ERROR, F.CONDITION_NUMBER, F.FLOAT32_BREAKDOWN)),
                 tiers=RESOLVING_TIERS),
    claims.Claim("nngp_often_beats_ntk",
                 "the NNGP often outperforms the NTK in kernel regression (2007.15801 abstract: 'NNGP kernels frequently "
                 "outperform neural tangent (NT) kernels'): NNGP >= NTK test "
                 "accuracy for at least half the architectures",
                 claims.Predicate("NNGP >= NTK (ridge, diag_reg on validation) in >= half the architectures",
                                  _nngp_vs_ntk, reads=(F.KERNEL_SCORE,)),
                 tiers=("paper",)),
)
