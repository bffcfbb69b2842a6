"""The claims of `commutativity` over its families, with the tolerances they are checked by."""
from __future__ import annotations

import math

from harness import claims
from harness.families import LARGEST, SameAs
from harness.precision import Rounding

from benchmarks.commutativity import families as F
from benchmarks.commutativity import theory
from benchmarks.commutativity.config import MAX_KERNEL_DEPTH

# library kernel (the run's precision) vs residual_flow recursion (float64): the library's rounding bound at the
# deepest kernel any tier runs, for CIFAR-10 inputs (families.py: d + 8 L unit roundoffs, relative)
KERNEL_MATCH = Rounding(F.kernel_ulps(MAX_KERNEL_DEPTH, "cifar10"), relative=False,
                        derivation="families.kernel_ulps at the deepest kernel of any tier")
WIDTH_FIRST_SLOPE = (-1.05, -0.95)   # theory -1 (Euler, O(1/L)); the O(1/L^2) term bends it by < 0.02 here
ERROR_COEFFICIENT_RTOL = 0.02    # L * error at L >= 64 vs its limit e_c: relative O(1/L) correction (0.6% at 64)
# theory -1/2: the CLT fluctuation of c_{n,L}, uniform in L. The seed mean of the fitted slopes has a standard error
# of 0.06 at the smoke tier (4 seeds, spread 0.12: the interval is 1.7 standard errors wide on each side, so about 1
# honest run in 10 would fail) and at most 0.02 at the small tier (8 seeds): the rate is asserted from small up.
FLUCTUATION_SLOPE = (-0.6, -0.4)
SLOPE_TIERS = ("small", "paper")
UNIFORM_DEPTH_FACTOR = 1.25      # distance at the largest depth vs the smallest, per width (one-sided Welch)
CLAIM_ALPHA = 0.01
# ReLU, s = 1, infinite width: (1 - c_L)^(-1/2) grows linearly in L with slope a/2 = sqrt(2)/(9 pi) (package
# docstring, part 5). The two-point slope between the two largest kernel depths (the smaller >= 32, config.py)
# is off by the first-order correction (3a/4) eps^(1/2) <= 3.0% at L = 32..64 for any c0 in [-1, 1) (1.5-2.7%
# for the smoke tier's pairs, 0.6-0.8% at 128..256); the tolerance doubles that for the O(eps) remainder, and a
# different collapse law (e.g. 1 - c ~ 1/L, or exponential) would be off by far more.
SCALE_ONE_COLLAPSE_SLOPE = math.sqrt(2.0) / (9.0 * math.pi)   # 0.05002
SCALE_ONE_SLOPE_RTOL = 0.06
CONTRAST_MIN_VAR_RATIO = 10.0    # s = 1: q_L / q_0 at the largest depth vs the s = L^(-1/2) limit (<= 1.65)
TRIVIAL_SLOPE = (-1.1, -0.9)     # s = 1/L: q_L / q_0 - 1 and |c_L - c_0| = O(1/L) at infinite width
# Keras nets vs the Gram simulator: every KS p-value above KERAS_FAMILY_ALPHA / (number of tests), Bonferroni,
# so a run where both samplers draw from the same distribution fails with probability <= 1%.
KERAS_FAMILY_ALPHA = 0.01
PER_PATH = ("act", "inputs")


def _variance_explodes(view) -> tuple[bool, str]:
  """s = 1: q_L / q_0 at the largest L at least CONTRAST_MIN_VAR_RATIO x the flow's s = L^(-1/2) limit."""
  results = []
  for (act,), table in view.of(F.IW_VAR_RATIO).select(scale="one").groups("act").items():
    depth, ratio = table.series("L")[-1]
    limit = view.get(F.LIMIT_VAR_RATIO.at(act=act)).mean
    results.append((ratio.mean >= CONTRAST_MIN_VAR_RATIO * limit,
                    f"{act}: q_L/q_0 = {ratio.mean:.4g} at L={depth} (s = L^-1/2 limit {limit:.4g})"))
  if not results:
    raise claims.MissingMetric("no infinite_width_var_ratio metrics at scale=one")
  return all(ok for ok, _ in results), "; ".join(text for _, text in results)


def _relu_collapse(view) -> tuple[bool, str]:
  """ReLU, s = 1: 1 - c_L strictly decreasing in L per synthetic pair, and the slope of (1 - c_L)^(-1/2)
  between the two largest kernel depths within SCALE_ONE_SLOPE_RTOL of sqrt(2) / (9 pi) (package docstring)."""
  by_pair = view.of(F.IW_PAIR_CORR).select(act="relu", scale="one").groups("c0")
  if not by_pair:
    raise claims.MissingMetric("no infinite_width_corr/relu/scale=one metrics")
  ok, slopes, failed = True, [], []
  for (c0,), table in by_pair.items():
    series = [(depth, m.mean) for depth, m in table.series("L")]
    gaps = [1.0 - c for _, c in series]
    if len(series) < 2 or min(gaps) <= 0:
      ok = False
      failed.append(f"c0={c0:g}: 1 - c_L = {gaps}")
      continue
    if not all(b < a for a, b in zip(gaps, gaps[1:])):
      ok = False
      failed.append(f"c0={c0:g}: 1 - c_L not strictly decreasing: " + ", ".join(f"{g:.4g}" for g in gaps))
    (l1, g1), (l2, g2) = (series[-2][0], gaps[-2]), (series[-1][0], gaps[-1])
    slope = (g2 ** -0.5 - g1 ** -0.5) / (l2 - l1)
    slopes.append(slope)
    if abs(slope / SCALE_ONE_COLLAPSE_SLOPE - 1.0) > SCALE_ONE_SLOPE_RTOL:
      ok = False
      failed.append(f"c0={c0:g}: slope {slope:.5f} at L={l1}..{l2}")
  text = (f"slope of (1 - c_L)^-1/2 in {min(slopes, default=math.nan):.5f}..{max(slopes, default=math.nan):.5f} "
          f"vs sqrt(2)/(9 pi) = {SCALE_ONE_COLLAPSE_SLOPE:.5f}")
  return ok, text + "".join(f"; {t}" for t in failed)


_ONE = theory.RELU_VAR_RATIO["one"]

CLAIMS = (
    claims.Claim("flow_relu_variance_closed_form",
                 "ReLU: the flow's variance limit is q(1) = e^(1/2) q(0) (dq/dt = q/2)",
                 claims.Close(F.LIMIT_VAR_RATIO.at(act="relu"), theory.RELU_FLOW_VARIANCE.value(), atol=1e-10)),
    claims.Claim("library_kernel_is_the_residual_recursion",
                 "the library's infinite-width kernel of the finite-depth net equals K_l = K_(l-1) + s^2 E[phi phi]",
                 claims.AllWithin(F.KERNEL_VS_RECURSION, high=KERNEL_MATCH, per=("act",))),
    claims.Claim("width_first_path_converges_at_rate_1_over_L",
                 "width first: the infinite-width kernel at depth L approaches the flow's limit as e_c / L "
                 "(Euler discretisation of the flow that characterises the limit, Hayou & Yang 2023)",
                 claims.AllOf((
                     claims.StepwiseDecrease(F.IW_CORR_ERROR, along="L", test="none", per=PER_PATH),
                     claims.AllWithin(F.IW_SLOPE, low=WIDTH_FIRST_SLOPE[0], high=WIDTH_FIRST_SLOPE[1], per=PER_PATH),
                     claims.Matches(F.IW_SCALED_ERROR, F.ERROR_COEFFICIENT, rtol=ERROR_COEFFICIENT_RTOL)))),
    claims.Claim("depth_first_path_converges",
                 "depth first (L = largest depth, n growing): the distance to the limit falls to 0",
                 claims.StepwiseDecrease(F.MC_CORR_ERROR, along="n", alpha=CLAIM_ALPHA, where={"L": LARGEST},
                                         per=PER_PATH)),
    claims.Claim("depth_first_rate_is_n_to_the_minus_half",
                 "depth first: the distance falls like n^(-1/2) (the CLT fluctuation of c_(n,L))",
                 claims.AllWithin(F.MC_SLOPE, low=FLUCTUATION_SLOPE[0], high=FLUCTUATION_SLOPE[1],
                                  where={"path": "depth_first"}, per=PER_PATH), tiers=SLOPE_TIERS),
    claims.Claim("joint_path_converges",
                 "jointly (n = L growing): the distance to the limit falls to 0",
                 claims.StepwiseDecrease(F.MC_CORR_ERROR, along="n", alpha=CLAIM_ALPHA, where={"L": SameAs("n")},
                                         per=PER_PATH)),
    claims.Claim("joint_rate_is_n_to_the_minus_half",
                 "jointly: the distance falls like n^(-1/2), uniformly in depth",
                 claims.AllWithin(F.MC_SLOPE, low=FLUCTUATION_SLOPE[0], high=FLUCTUATION_SLOPE[1],
                                  where={"path": "joint"}, per=PER_PATH), tiers=SLOPE_TIERS),
    claims.Claim("finite_width_error_uniform_in_depth",
                 "the finite-width distance does not grow with depth (the limits commute, Hayou & Yang 2023)",
                 claims.NotSignificantlyAbove(F.MC_CORR_ERROR, along="L", factor=UNIFORM_DEPTH_FACTOR,
                                              alpha=CLAIM_ALPHA, per=("act", "inputs", "n"))),
    claims.Claim("gaussianity_improves_with_width",
                 "pre-activations become Gaussian as n grows, at every depth (excess kurtosis = O(1/n))",
                 claims.StepwiseDecrease(F.GAUSS_KURTOSIS, along="n", alpha=CLAIM_ALPHA, per=("act", "L"))),
    claims.Claim("branch_scale_one_degenerates",
                 "without 1/sqrt(L) (s = 1, infinite width): the variance explodes with depth; ReLU: q_L = 1.5^L q_0 "
                 "and the correlation collapses to 1 algebraically, eps = 1 - c obeying eps_(l+1) = eps_l - "
                 "(2 sqrt 2 / (9 pi)) eps_l^(3/2) + O(eps^(5/2)) (arc-cosine map near c = 1), so (1 - c_L)^(-1/2) "
                 "grows like L sqrt(2)/(9 pi). Erf: variance only (q_L grows linearly, and c_L decays to 0 rather "
                 "than 1, as (2/pi) arcsin c < c on (0, 1); package docstring, part 5)",
                 claims.AllOf((
                     claims.Predicate(f"q_L/q_0 >= {CONTRAST_MIN_VAR_RATIO:g} x the flow limit at the largest L",
                                      _variance_explodes, reads=(F.IW_VAR_RATIO, F.LIMIT_VAR_RATIO)),
                     claims.AgreesWithTheory(F.IW_VAR_RATIO, where=_ONE.labels, theory=_ONE.value,
                                             formula=_ONE.formula, rounding=F.VAR_RATIO_ROUNDING),
                     claims.Predicate("ReLU: 1 - c_L strictly decreasing in L for every synthetic pair, and the slope "
                                      "of (1 - c_L)^(-1/2) between the two largest L within "
                                      f"{SCALE_ONE_SLOPE_RTOL:g} (rel) of sqrt(2)/(9 pi) = {SCALE_ONE_COLLAPSE_SLOPE:.5f}",
                                      _relu_collapse, reads=(F.IW_PAIR_CORR,))))),
    claims.Claim("branch_scale_inverse_depth_is_trivial",
                 "with 1/L branches the net tends to the identity map: q_L/q_0 - 1 and |c_L - c_0| = O(1/L)",
                 claims.AllOf((
                     claims.AllWithin(F.TRIVIAL_SLOPE, low=TRIVIAL_SLOPE[0], high=TRIVIAL_SLOPE[1], per=("act",)),
                     claims.StepwiseDecrease(F.MC_REL_CHANGE, along="L", alpha=CLAIM_ALPHA,
                                             where={"scale": "inverse_depth", "n": LARGEST}, per=("act",))))),
    claims.Claim("keras_nets_match_gram_simulator",
                 "finite Keras nets of the architecture library (spec.keras_model) draw c_L and q_L from the same "
                 "distribution as the Gram-recursion simulator of the Monte Carlo grid (Li, Nica & Roy 2022)",
                 claims.PValuesAbove(F.KS_PVALUE, family_alpha=KERAS_FAMILY_ALPHA)),
)
