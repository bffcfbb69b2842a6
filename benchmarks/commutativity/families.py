"""The metrics of `commutativity`, declared once: name template, labels, unit, meaning, reference rule.

Labels: act (relu, erf), inputs (synthetic, cifar10), scale (the branch scale s(L): inverse_sqrt_depth = the
paper's L^(-1/2), one, inverse_depth), n (width), L (depth), c0 (input correlation of a synthetic pair).
Rules: float64 ODE / recursion / library numbers are deterministic up to libm and BLAS rounding across
machines (relative 1e-9 to 1e-6); Monte Carlo metrics are per-seed values compared by Welch's t-test against the
blessed seeds. Families without a rule are reported and read by claims but never blessed (e.g. KS p-values are
uniform under the claim, and Keras draws differ between backends).
"""
from __future__ import annotations

from harness.families import Family
from harness.residual_gram import ACTIVATIONS

from benchmarks.commutativity.config import INPUT_SETS

SCALES = ("inverse_sqrt_depth", "one", "inverse_depth")
PATHS = ("depth_first", "joint")
WELCH = {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"}
_ACT, _INPUTS, _SCALE = {"act": ACTIVATIONS}, {"inputs": INPUT_SETS}, {"scale": SCALES}


def _rel(rtol: float) -> dict:
  return {"kind": "relative", "rtol": rtol}


def _abs(atol: float) -> dict:
  return {"kind": "absolute", "atol": atol}


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
                             description="largest relative difference, library kernel vs residual_flow recursion, "
                                         "over scales, depths, pairs and entries")
IW_CORR_ERROR = Family("infinite_width_corr_error/{act}/{inputs}/L={L:d}", unit="1", rule=_rel(1e-6),
                       choices={**_ACT, **_INPUTS},
                       description="mean |c_L - c(1)| over the pairs, infinite width, s = L^(-1/2)")
IW_SLOPE = Family("slope/infinite_width_corr_error_vs_L/{act}/{inputs}", unit="1", rule=_abs(1e-6),
                  choices={**_ACT, **_INPUTS}, description="log-log slope of infinite_width_corr_error vs L")
IW_SCALED_ERROR = Family("depth_times_infinite_width_corr_error/{act}/{inputs}/at_max_L", unit="1", rule=_rel(1e-6),
                         choices={**_ACT, **_INPUTS}, description="L x infinite_width_corr_error at the largest L")
IW_VAR_RATIO = Family("infinite_width_var_ratio/{act}/scale={scale}/L={L:d}", unit="1", rule=_rel(1e-9),
                      choices={**_ACT, **_SCALE}, description="mean q_L / q_0 over the synthetic points, infinite width")
IW_MEAN_CORR = Family("infinite_width_mean_corr/{act}/scale={scale}/L={L:d}", unit="1", choices={**_ACT, **_SCALE},
                      description="mean c_L over the synthetic pairs, infinite width")
IW_CORR_CHANGE = Family("infinite_width_corr_change/{act}/scale={scale}/L={L:d}", unit="1",
                        choices={**_ACT, **_SCALE}, description="mean |c_L - c_0| over the synthetic pairs")
IW_PAIR_CORR = Family("infinite_width_corr/{act}/scale={scale}/c0={c0:g}/L={L:d}", unit="1", rule=_abs(1e-12),
                      choices={**_ACT, **_SCALE}, description="c_L of one synthetic pair, infinite width")
TRIVIAL_SLOPE = Family("slope/{what}_vs_L/{act}/scale=inverse_depth", unit="1", rule=_abs(1e-6),
                       choices={"what": ("infinite_width_var_ratio", "infinite_width_corr_change"), **_ACT},
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
