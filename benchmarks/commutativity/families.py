"""The metrics of `commutativity`, declared once: name template, labels, unit, meaning, reference rule.

Labels: act (relu, erf), inputs (synthetic, cifar10), scale (the branch scale s(L): inverse_sqrt_depth = the
paper's L^(-1/2), one, inverse_depth), n (width), L (depth), c0 (input correlation of a synthetic pair).
Rules: float64 ODE / recursion / library numbers are deterministic up to libm and BLAS rounding across
machines (relative 1e-9 to 1e-6); Monte Carlo metrics are per-seed values compared by Welch's t-test against the
blessed seeds. The infinite-width families are computed in the run's precision, so their rules add a rounding
bound (harness.precision.Rounding, derived below): a float32 run is checked against the float64 references
within float32's rounding. The flow (scipy, float64 whatever the run's precision) needs none. Families without a rule are reported and read by claims but never blessed (e.g. KS p-values are
uniform under the claim, and Keras draws differ between backends).
"""
from __future__ import annotations

from harness.families import Family, MissingMetric
from harness.precision import Rounding, log_log_slope_ulps
from harness.residual_gram import ACTIVATIONS

from benchmarks.commutativity.config import INPUT_SETS, MAX_SYNTHETIC_POINTS

SCALES = ("inverse_sqrt_depth", "one", "inverse_depth")
PATHS = ("depth_first", "joint")
WELCH = {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"}
_ACT, _INPUTS, _SCALE = {"act": ACTIVATIONS}, {"inputs": INPUT_SETS}, {"scale": SCALES}


def _rel(rtol: float) -> dict:
  return {"kind": "relative", "rtol": rtol}


def _abs(atol: float) -> dict:
  return {"kind": "absolute", "atol": atol}


# -- rounding bounds of the infinite-width kernel (harness.precision; Higham 2002, Lemma 3.1) -----------------
# The library computes the kernel of depth L in the run's precision: the input Gram matrix (a dot product of d
# terms: error <= d u |x|.|x'| <= d u sqrt(q1 q2) by Cauchy-Schwarz, Higham Eq. 3.5: relative for the variances, in
# units of sqrt(q1 q2) for a covariance, which may cancel), then L blocks K_l = K_(l-1) + s^2 E[phi phi](K_(l-1)), each with
# at most ROUNDINGS_PER_BLOCK roundings per entry (the Gaussian expectation's square root, products, arc-cosine or
# arcsine and trigonometric terms, the scaling by s^2 and the sum). A block does not amplify relative errors to
# first order: E is concave in q with E(0) = 0, so q E'(q) <= E(q) and q_l = q_(l-1) + s^2 E(q_(l-1)) carries the
# relative error of q_(l-1) at most unchanged; the correlation map's derivative is at most 1 (arc-cosine and
# arcsine kernels). A correlation c = k12 / sqrt(q1 q2) adds its parts' relative errors and 3 roundings (|c| <= 1,
# so absolutely); a mean of m terms adds m roundings of its largest term. These are worst-case bounds: for CIFAR-10
# inputs (d = 3072) at depth 256 the float32 bound of a correlation is 0.004, and the derived slopes' and L x error
# bounds exceed some of the small tier's values (float32 cannot resolve those there; float64 bounds are 1e-9 of them).
ROUNDINGS_PER_BLOCK = 8
INPUT_GRAM_TERMS = {"synthetic": MAX_SYNTHETIC_POINTS, "cifar10": 3 * 32 * 32}
MEAN_TERMS = 64   # pairs or points averaged by one metric, at most (config: synthetic pairs, CIFAR-10 pairs)


def kernel_ulps(depth: int, inputs: str = "synthetic") -> float:
  """Relative rounding bound of a kernel entry after `depth` blocks, in unit roundoffs."""
  return INPUT_GRAM_TERMS[inputs] + ROUNDINGS_PER_BLOCK * depth


def corr_ulps(depth: int, inputs: str = "synthetic") -> float:
  """Absolute rounding bound of a correlation after `depth` blocks (plus a mean over pairs)."""
  return 2 * kernel_ulps(depth, inputs) + 3 + MEAN_TERMS


def _depths_and_values(view, family, **labels):
  if view is None:
    raise ValueError(f"the rounding bound reads the run's {family.template} metrics")
  depths, values = view.of(family).select(**labels).means("L")
  if len(depths) < 3:
    raise MissingMetric(f"the rounding bound needs the {family.template} metrics of the slope's points")
  return depths, values


def _corr_error_slope_ulps(labels, view) -> float:
  depths, errors = _depths_and_values(view, IW_CORR_ERROR, act=labels["act"], inputs=labels["inputs"])
  return log_log_slope_ulps(depths, [corr_ulps(L, labels["inputs"]) / e for L, e in zip(depths, errors)])


def _scaled_error_ulps(labels, view) -> float:
  depths, _ = _depths_and_values(view, IW_CORR_ERROR, act=labels["act"], inputs=labels["inputs"])
  return depths[-1] * corr_ulps(depths[-1], labels["inputs"])


def _trivial_slope_ulps(labels, view) -> float:
  if labels["what"] == "infinite_width_var_ratio":  # y = q_L/q_0 - 1: q_L/q_0 carries its relative bound
    depths, ratios = _depths_and_values(view, IW_VAR_RATIO, act=labels["act"], scale="inverse_depth")
    relative = [_var_ratio_ulps(L) * r / (r - 1.0) for L, r in zip(depths, ratios)]
  else:                                             # y = mean |c_L - c_0|: both correlations' absolute bounds
    depths, changes = _depths_and_values(view, IW_CORR_CHANGE, act=labels["act"], scale="inverse_depth")
    relative = [(corr_ulps(L) + corr_ulps(0)) / y for L, y in zip(depths, changes)]
  return log_log_slope_ulps(depths, relative)


def _var_ratio_ulps(depth: int) -> float:
  return kernel_ulps(depth) + kernel_ulps(0) + 1 + MEAN_TERMS


CORR_ROUNDING = Rounding(lambda labels, _: corr_ulps(labels["L"], labels.get("inputs", "synthetic")), relative=False,
                         derivation="c_L after L blocks: 2 (d + 8 L) + 3 + 64 u, absolutely (|c| <= 1)")
VAR_RATIO_ROUNDING = Rounding(lambda labels, _: _var_ratio_ulps(labels["L"]),
                              derivation="q_L / q_0: (d + 8 L) + d + 1 + 64 u, relatively")

# -- flow (part 1) ---------------------------------------------------------------------------------
INPUT_CORR = Family("input_corr/{inputs}/pair={pair:d}", unit="1", rule=_abs(1e-12), choices=_INPUTS,
                    description="input correlation x.x'/(|x||x'|) of an image pair")
LIMIT_CORR = Family("limit_corr/{act}/c0={c0:g}", unit="1", rule=_rel(1e-9), choices=_ACT,
                    description="c(1), the flow's limit correlation of the synthetic pair with input correlation c0")
LIMIT_CORR_IMAGES = Family("limit_corr/{act}/{inputs}/pair={pair:d}", unit="1", rule=_rel(1e-9),
                           choices={**_ACT, **_INPUTS}, description="c(1) of an image pair")
LIMIT_VAR_RATIO = Family("limit_var_ratio/{act}", unit="1", rule=_rel(1e-9), choices=_ACT,
                         description="q(1) / q(0), the flow's variance limit (the anchor)")
ERROR_COEFFICIENT = Family("theory_corr_error_coefficient/{act}/{inputs}", unit="1", rule=_rel(1e-6),
                           choices={**_ACT, **_INPUTS},
                           description="mean |e_c| over the pairs: c_L - c(1) = e_c / L + O(1/L^2) (Euler)")

# -- infinite width (part 2) ---------------------------------------------------------------------
KERNEL_VS_RECURSION = Family("max_rel_diff/infinite_width_kernel_library_vs_recursion/{act}", unit="1", choices=_ACT,
                             description="largest difference, library kernel vs residual_flow recursion, over "
                                         "scales, depths, pairs and entries, relative to the entry's scale (q1, q2; "
                                         "sqrt(q1 q2) for k12)")
IW_CORR_ERROR = Family("infinite_width_corr_error/{act}/{inputs}/L={L:d}", unit="1", rule=_rel(1e-6),
                       choices={**_ACT, **_INPUTS}, rounding=CORR_ROUNDING,
                       description="mean |c_L - c(1)| over the pairs, infinite width, s = L^(-1/2)")
IW_SLOPE = Family("slope/infinite_width_corr_error_vs_L/{act}/{inputs}", unit="1", rule=_abs(1e-6),
                  choices={**_ACT, **_INPUTS}, rounding=Rounding(
                      _corr_error_slope_ulps, relative=False,
                      derivation="least-squares slope of log errors: sum |w_L| corr_ulps(L) / error_L"), description="log-log slope of infinite_width_corr_error vs L")
IW_SCALED_ERROR = Family("depth_times_infinite_width_corr_error/{act}/{inputs}/at_max_L", unit="1", rule=_rel(1e-6),
                         choices={**_ACT, **_INPUTS}, rounding=Rounding(
                             _scaled_error_ulps, relative=False, derivation="L x corr_ulps(L) at the largest L"), description="L x infinite_width_corr_error at the largest L")
IW_VAR_RATIO = Family("infinite_width_var_ratio/{act}/scale={scale}/L={L:d}", unit="1", rule=_rel(1e-9),
                      choices={**_ACT, **_SCALE}, rounding=VAR_RATIO_ROUNDING, description="mean q_L / q_0 over the synthetic points, infinite width")
IW_MEAN_CORR = Family("infinite_width_mean_corr/{act}/scale={scale}/L={L:d}", unit="1", choices={**_ACT, **_SCALE},
                      description="mean c_L over the synthetic pairs, infinite width")
IW_CORR_CHANGE = Family("infinite_width_corr_change/{act}/scale={scale}/L={L:d}", unit="1", rule=_rel(1e-9),
                        choices={**_ACT, **_SCALE}, rounding=CORR_ROUNDING, description="mean |c_L - c_0| over the synthetic pairs")
IW_PAIR_CORR = Family("infinite_width_corr/{act}/scale={scale}/c0={c0:g}/L={L:d}", unit="1", rule=_abs(1e-12),
                      choices={**_ACT, **_SCALE}, rounding=CORR_ROUNDING, description="c_L of one synthetic pair, infinite width")
TRIVIAL_SLOPE = Family("slope/{what}_vs_L/{act}/scale=inverse_depth", unit="1", rule=_abs(1e-6),
                       choices={"what": ("infinite_width_var_ratio", "infinite_width_corr_change"), **_ACT},
                       rounding=Rounding(_trivial_slope_ulps, relative=False,
                                         derivation="least-squares slope of log y: sum |w_L| (bound of y_L) / y_L"),
                       description="s = 1/L: log-log slope vs L of q_L/q_0 - 1 or of |c_L - c_0|")

# -- Monte Carlo (parts 3, 5) ----------------------------------------------------------------------
MC_CORR_ERROR = Family("mc_corr_abs_error/{act}/{inputs}/n={n:d}/L={L:d}", unit="1", rule=WELCH,
                       rule_where={"inputs": "synthetic"}, choices={**_ACT, **_INPUTS},
                       description="mean |c_(n,L) - c(1)| over a seed's nets and the pairs, s = L^(-1/2)")
MC_VAR_ERROR = Family("mc_var_rel_error/{act}/{inputs}/n={n:d}/L={L:d}", unit="1", choices={**_ACT, **_INPUTS},
                      description="mean |q_(n,L) / q(1) - 1| over a seed's nets and the synthetic points")
MC_SLOPE = Family("slope/mc_corr_abs_error_vs_n/{path}/{act}/{inputs}", unit="1", rule=WELCH,
                  choices={"path": PATHS, **_ACT, **_INPUTS},
                  description="per seed: log-log slope of mc_corr_abs_error vs n along the path")
MC_REL_CHANGE = Family("mc_rel_change/{act}/scale={scale}/n={n:d}/L={L:d}", unit="1", choices={**_ACT, **_SCALE},
                       description="mean |Y_L - Y_0| / |Y_0| over a seed's nets and the synthetic points")
MC_MEAN_CORR = Family("mc_mean_corr/{act}/scale={scale}/n={n:d}/L={L:d}", unit="1", choices={**_ACT, **_SCALE},
                      description="mean c_(n,L) over a seed's nets and the synthetic pairs")
MC_CORR_CHANGE = Family("mc_corr_change/{act}/scale={scale}/n={n:d}/L={L:d}", unit="1", choices={**_ACT, **_SCALE},
                        description="mean |c_(n,L) - c_(n,0)| (s = 1/L)")

# -- Keras nets (part 6) and Gaussianity (part 4) ------------------------------------------------------
KERAS_CORR_ERROR = Family("keras_corr_abs_error/{act}/{inputs}/n={n:d}/L={L:d}", unit="1", rule=WELCH,
                          choices={**_ACT, **_INPUTS}, description="mc_corr_abs_error of the library's Keras nets")
KS_PVALUE = Family("keras_vs_gram_ks_pvalue/{act}/n={n:d}/L={L:d}/{statistic}", unit="p", choices=_ACT,
                   description="two-sample KS p-value, Keras nets vs Gram simulator, of c_L of a synthetic pair "
                               "(statistic c0=...) or of the anchor's q_L (q_anchor)")
GAUSS_KURTOSIS = Family("gauss_excess_kurtosis/{act}/L={L:d}/n={n:d}", unit="1", rule=WELCH, choices=_ACT,
                        description="excess kurtosis of a pre-activation of Y_L (one input), per seed")

FAMILIES = (INPUT_CORR, LIMIT_CORR, LIMIT_CORR_IMAGES, LIMIT_VAR_RATIO, ERROR_COEFFICIENT, KERNEL_VS_RECURSION,
            IW_CORR_ERROR, IW_SLOPE, IW_SCALED_ERROR, IW_VAR_RATIO, IW_MEAN_CORR, IW_CORR_CHANGE, IW_PAIR_CORR,
            TRIVIAL_SLOPE, MC_CORR_ERROR, MC_VAR_ERROR, MC_SLOPE, MC_REL_CHANGE, MC_MEAN_CORR, MC_CORR_CHANGE,
            KERAS_CORR_ERROR, KS_PVALUE, GAUSS_KURTOSIS)
