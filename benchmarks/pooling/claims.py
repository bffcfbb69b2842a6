"""The claims of `pooling` over its families, with the tolerances they are checked by."""
from __future__ import annotations

from harness import claims

from benchmarks.pooling import families as F
from benchmarks.pooling.phases import FCN_THEORY_DEPTHS, RATIO_DEPTH, THEORY_N_TRAIN, THEORY_SIGMA_B2

ROUTE_RTOL = 1e-6                     # closed form vs Gauss-Hermite, float64
# CNN theory (circular padding): CNN-Flatten within this relative distance of the FCN's NTK condition number and
# mean predictor at every depth and phase. Measured (the 96 theory images at 4x4, Erf, depths 1-100): at most
# 4.6% (chaotic phase, depth 1: the patch-to-patch inhomogeneity of the input, which depth washes out), 2.7%
# (ordered) to 0.1% (chaotic) at depth 100; the bound is about twice the largest measured value.
FLATTEN_FCN_RTOL = 0.10
# ... while CNN-GAP's condition number is at least this factor away from the FCN's (measured >= 10x).
GAP_FCN_MIN_RATIO = 5.0
# Critical line: Theta ~ l q* (2/3 I + 1/3 11^T) at depth l (the ratio -> 1/3, critical_ntk_ratio_erf), whose
# condition number on n training points is (2/3 + n/3) / (2/3) = 1 + n/2 (eigenvalues 2/3 + n/3 once, 2/3 else).
CRITICAL_CONDITION_NUMBER_LIMIT = 1.0 + THEORY_N_TRAIN / 2.0
ORDERED_DEPTHS = tuple(d for d in FCN_THEORY_DEPTHS if d >= 10)
# Tiers sized to resolve the accuracy comparisons with significance (smoke reports them without asserting).
RESOLVING_TIERS = ("small", "paper")


def profile_ratios(view, arch: str) -> dict[tuple[str, str, int], float]:
  """{(quantity, phase, depth): arch's value / the FCN's on the same images} over the circular CNN profiles."""
  fcn = view.of(F.SMALL_FCN_PROFILE)
  out = {}
  for row in view.of(F.CNN_PROFILE).select(arch=arch):
    labels = dict(row.labels)
    twin = fcn.select(quantity=labels["quantity"], px=labels["px"], phase=labels["phase"], depth=labels["depth"])
    if len(twin):
      out[labels["quantity"], labels["phase"], labels["depth"]] = row.metric.mean / twin.one().mean
  return out


def _flatten_tracks_fcn(view) -> tuple[bool, str]:
  flatten, gap = profile_ratios(view, "cnn_flatten"), profile_ratios(view, "cnn_gap")
  if not flatten or not gap:
    raise claims.MissingMetric("no circular CNN theory profiles")
  worst = max(flatten, key=lambda key: abs(flatten[key] - 1.0))
  kappa_gap = {key: r for key, r in gap.items() if key[0] == "ntk_condition_number"}
  closest = min(kappa_gap, key=lambda key: max(kappa_gap[key], 1.0 / kappa_gap[key]))
  gap_factor = max(kappa_gap[closest], 1.0 / kappa_gap[closest])
  ok = abs(flatten[worst] - 1.0) <= FLATTEN_FCN_RTOL and gap_factor >= GAP_FCN_MIN_RATIO
  return ok, (f"{len(flatten)} (quantity, phase, depth) points; CNN-Flatten / FCN worst {flatten[worst]:.4f} "
              f"({worst[0]}, {worst[1]}, depth {worst[2]}); CNN-GAP condition number / FCN closest "
              f"{kappa_gap[closest]:.3g} ({closest[1]}, depth {closest[2]})")


def _fcn(phase: str, depth: int, quantity: str = "ntk_condition_number"):
  return F.FCN_PROFILE.at(quantity=quantity, phase=phase, depth=depth)


def _accuracy(family, arch: str, **labels):
  return family.at(arch=arch, score="acc", **labels)


CLAIMS = (
    claims.Claim("gap_kernel_beats_flatten",
                 "CNN-GAP NTK regression is more accurate on CIFAR-10 than CNN-Flatten (1912.13053 abstract: CNNs with "
                 "pooling have 'markedly different and often better generalization'; 1904.11955 Table 1 compares "
                 "CNTK-GAP with CNTK-V by depth)",
                 claims.Greater(_accuracy(F.KERNEL_SCORE, "cnn_gap", kernel="ntk"),
                                _accuracy(F.KERNEL_SCORE, "cnn_flatten", kernel="ntk"), test="paired"),
                 tiers=RESOLVING_TIERS),
    claims.Claim("gap_nngp_beats_flatten", "the same for the NNGP (GP posterior mean)",
                 claims.Greater(_accuracy(F.KERNEL_SCORE, "cnn_gap", kernel="nngp"),
                                _accuracy(F.KERNEL_SCORE, "cnn_flatten", kernel="nngp"), test="paired"),
                 tiers=RESOLVING_TIERS),
    claims.Claim("gap_finite_beats_flatten",
                 "finite CNN-GAP nets trained with SGD on MSE beat CNN-Flatten nets (1912.13053, its CIFAR-10 experiments)",
                 claims.Greater(_accuracy(F.FINITE_SCORE, "cnn_gap", split="test"),
                                _accuracy(F.FINITE_SCORE, "cnn_flatten", split="test"), test="paired"),
                 tiers=RESOLVING_TIERS),
    claims.Claim("flatten_tracks_fcn_gap_does_not",
                 "without pooling a CNN's NTK behaves almost identically to the FCN's, with pooling markedly "
                 "differently (1912.13053 abstract; circular padding, Erf, ordered / critical / chaotic phases)",
                 claims.Predicate(f"NTK condition number and mean predictor of CNN-Flatten within {FLATTEN_FCN_RTOL:g} "
                                  f"(relative) of the FCN's at every depth and phase; CNN-GAP's condition number at "
                                  f"least {GAP_FCN_MIN_RATIO:g}x away from the FCN's at every depth and phase",
                                  _flatten_tracks_fcn, reads=(F.CNN_PROFILE, F.SMALL_FCN_PROFILE))),
    claims.Claim("critical_line_routes_agree",
                 "critical line, q*, chi_1, c*, chi_c*, xi_1, xi_*: closed form / Newton and Gauss-Hermite agree "
                 f"to {ROUTE_RTOL:g} relative (float64)",
                 claims.RoutesAgree((F.CRITICAL_SIGMA_W2, F.MEAN_FIELD), label="method", a="closed_form",
                                    b="quadrature", rtol=ROUTE_RTOL)),
    claims.Claim("critical_ntk_ratio_erf",
                 "at criticality the NTK off-diagonal/diagonal ratio tends to 1/3 for Erf (derived in "
                 "signal_propagation.two_point_ntk_ratio; O(log l / l) at depth l)",
                 claims.Close(F.NTK_RATIO.at(act="erf", sigma_b2=THEORY_SIGMA_B2, depth=RATIO_DEPTH), 1.0 / 3.0,
                              atol=2e-3)),
    claims.Claim("critical_ntk_ratio_relu",
                 "... and 1/4 for ReLU at (sigma_w2, sigma_b2) = (2, 0), its only critical point with finite q* "
                 "(O(1/l) at depth l)",
                 claims.Close(F.NTK_RATIO.at(act="relu", sigma_b2=0.0, depth=RATIO_DEPTH), 0.25, atol=2e-3)),
    claims.Claim("ordered_condition_number_grows",
                 "ordered phase: the FCN NTK condition number grows with depth (1912.13053: trainability in the ordered phase)",
                 claims.Monotone(F.FCN_PROFILE, along="depth", direction="increasing",
                                 where={"quantity": "ntk_condition_number", "phase": "ordered", "depth": ORDERED_DEPTHS})),
    claims.Claim("chaotic_condition_number_to_one",
                 "chaotic phase: the FCN NTK condition number tends to 1 (kappa(400) - 1 < 1e-3)",
                 claims.InInterval(_fcn("chaotic", 400), 1.0, 1.0 + 1e-3)),
    claims.Claim("critical_condition_number_limit",
                 "critical line: kappa -> 1 + n/2 (Theta ~ l q* (2/3 I + 1/3 11^T)); within 5% at depth 400 "
                 "(the ratio is still ~0.01 below 1/3 there, moving kappa by ~4%)",
                 claims.Close(_fcn("critical", 400), CRITICAL_CONDITION_NUMBER_LIMIT, rtol=0.05)),
    claims.Claim("chaotic_mean_predictor_decays",
                 "chaotic phase: the NTK mean predictor on test points decays with depth ...",
                 claims.Monotone(F.FCN_PROFILE, along="depth", direction="decreasing",
                                 where={"quantity": "ntk_mean_predictor_rms", "phase": "chaotic",
                                        "depth": ORDERED_DEPTHS})),
    claims.Claim("chaotic_decay_rate_is_one_over_xi_star",
                 "... like exp(-l / xi_*): fitted rate over depths 200-400 within 10% of 1/xi_* (the l prefactor "
                 "of l exp(-l/xi_*) lowers it by ~1/300, 5%)",
                 claims.Close(F.DECAY_RATE.at(), F.INVERSE_XI_STAR.at(), rtol=0.1)),
)
