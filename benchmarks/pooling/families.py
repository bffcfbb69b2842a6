"""The metrics of `pooling`, declared once: name template, labels, unit, meaning, reference rule.

Labels: arch (fcn, cnn_flatten, cnn_gap), kernel (nngp, ntk), phase (ordered, critical, chaotic), depth,
px (image side of the CNN theory inputs), method (closed_form, quadrature: the two routes of
harness.theory.signal_propagation). Rules: accuracies and MSEs are per-seed values compared by Welch's t-test
with the blessed seeds; the deterministic float64 theory is bit-for-bit up to BLAS/libm differences across
machines (relative 1e-9; the NTK depth profiles, through eigendecompositions, 1e-6).
"""
from __future__ import annotations

from harness.families import Family
from harness.theory import signal_propagation as sp

from benchmarks.pooling.config import ARCHITECTURES

WELCH = {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"}
THEORY_RULE = {"kind": "relative", "rtol": 1e-9}
PROFILE_RULE = {"kind": "relative", "rtol": 1e-6}
PHASES = ("ordered", "critical", "chaotic")
PROFILE_QUANTITIES = ("ntk_condition_number", "ntk_mean_predictor_rms")
_ARCH, _KERNEL = {"arch": ARCHITECTURES}, {"kernel": ("nngp", "ntk")}
_PROFILE = {"quantity": PROFILE_QUANTITIES, "phase": PHASES}

# -- part 1: kernel regression, part 2: finite nets -------------------------------------------------
KERNEL_SCORE = Family("kernel_{kernel}_test_{score}/{arch}", unit="fraction (acc) / squared error (mse)", rule=WELCH,
                      choices={**_KERNEL, "score": ("acc", "mse"), **_ARCH},
                      description="NNGP / NTK regression on a seed's test block (diag_reg chosen on validation)")
KERNEL_SCORE_BY_DEPTH = Family("kernel_{kernel}_test_{score}/{arch}/depth={depth:d}", rule=WELCH,
                               unit="fraction (acc) / squared error (mse)",
                               choices={**_KERNEL, "score": ("acc", "mse"), **_ARCH},
                               description="the same at the depths of the sweep (extra_kernel_depths)")
FINITE_SCORE = Family("finite_{split}_{score}/{arch}", unit="fraction (acc) / squared error (mse)", rule=WELCH,
                      choices={"split": ("test", "train", "val"), "score": ("acc", "mse"), **_ARCH},
                      description="SGD-trained net (NTK parameterisation, MSE), epoch chosen on validation")

# -- part 3: theory ------------------------------------------------------------------------------
CRITICAL_SIGMA_W2 = Family("theory/critical_sigma_w2/erf/sigma_b2={sigma_b2:g}/{method}", rule=THEORY_RULE,
                           choices={"method": sp.METHODS}, description="Erf critical line sigma_w2(sigma_b2)")
MEAN_FIELD = Family("theory/{quantity}/erf/sigma_w2={sigma_w2:g},sigma_b2={sigma_b2:g}/{method}", rule=THEORY_RULE,
                    choices={"quantity": ("q_star", "chi_1", "xi_1", "c_star", "chi_c_star", "xi_star"),
                             "method": sp.METHODS},
                    description="mean-field quantities of an Erf net (Schoenholz et al. 2017)")
NTK_RATIO = Family("theory/ntk_offdiag_ratio/{act}/critical/sigma_b2={sigma_b2:g}/depth={depth:d}", rule=THEORY_RULE,
                   choices={"act": ("erf", "relu")}, description="two-point NTK off-diagonal / diagonal at criticality")
DECAY_RATE = Family("theory/mean_predictor_decay_rate/fcn/erf/chaotic", unit="1/layer", rule=THEORY_RULE,
                    description="fitted exponential decay rate of the FCN NTK mean predictor with depth")
INVERSE_XI_STAR = Family("theory/inverse_xi_star/erf/chaotic", unit="1/layer", rule=THEORY_RULE,
                         description="1 / xi_*, the correlation depth scale's inverse")
FCN_PROFILE = Family("{quantity}/fcn/erf/{phase}/depth={depth:d}", rule=PROFILE_RULE, choices=_PROFILE,
                     description="FCN NTK condition number / mean predictor rms on the colab's 32x32 inputs")
SMALL_FCN_PROFILE = Family("{quantity}/fcn_{px:d}px/erf/{phase}/depth={depth:d}", rule=PROFILE_RULE, choices=_PROFILE,
                           description="the same on the downsampled CNN theory inputs")
CNN_PROFILE = Family("{quantity}/{arch}_circular_{px:d}px/erf/{phase}/depth={depth:d}", rule=PROFILE_RULE,
                     choices={**_PROFILE, "arch": ("cnn_flatten", "cnn_gap")},
                     description="CNN (circular padding) NTK profile on the downsampled inputs")

FAMILIES = (KERNEL_SCORE, KERNEL_SCORE_BY_DEPTH, FINITE_SCORE, CRITICAL_SIGMA_W2, MEAN_FIELD, NTK_RATIO, DECAY_RATE,
            INVERSE_XI_STAR, FCN_PROFILE, SMALL_FCN_PROFILE, CNN_PROFILE)
