"""The claims of `width_consistency` (Vyas et al. 2023, arXiv 2305.18411, abstract), over its families.

Asserted at the smoke tier: what its 4 widths x 4 seeds resolve (muP's learning-rate transfer, the loss curves of
the two widest nets, D_N falling with width, the coordinate check). The variance slope, the ensemble comparisons
and the standard parameterization's moving rate need the small tier's widths and seeds: reported at smoke,
asserted where resolved.
"""
from __future__ import annotations

import math

from harness import claims
from harness.families import LARGEST

from benchmarks.width_consistency import families as F

RESOLVING_TIERS = ("small", "paper")
CNN_TIERS = ("small",)         # the tier with a CNN phase sized to resolve it (paper: the ResNet family instead)
CLAIM_ALPHA = 0.01
LR_TRANSFER_STEPS = 1          # muP: best base rate the same at every width within one grid step
LOSS_CURVE_RTOL = 0.02         # two widest muP nets: mean test loss within 2% at every logged step (seed sd ~0.5%)
VARIANCE_SLOPE = (-1.3, -0.7)  # theory -1: the initialisation-dependent output variance is O(1/N)
SP_RATE_MIN_SHIFT = 1          # standard parameterization: the widest net's best rate at least a grid step lower
MUP_COORDINATE_MAX_RATIO = 1.3  # muP: max/min over widths of a layer's mean |h| at every step <= this (init: ~1.1)
# muP: the two widest nets' mean sharpness ratio (harness.sharpness) within this relative gap at every logged step
# after 0: 3 standard deviations of the difference of two 4-seed means (3 x 0.056 x sqrt(2/4) = 0.119), from a
# single net's relative sd of 0.056 across seeds (pooled over 5 widths x 5 steps x 4 seeds, small tier, 2026-12-06).
SHARPNESS_RTOL = 0.12
# Sharpness at initialisation against width, at a base rate fixed across widths: SP's NTK (and the Gauss-Newton part
# of the Hessian) grows like N (hidden layers contribute |h|^2 ~ N each), so lr * lambda_max grows like N: slope 1,
# flattened at small N by the width-independent input layer (measured 0.92 over N 64-1024); muP keeps lr * Theta
# O(1) (every step moves f by O(1): Yang & Hu 2021), slope 0 (measured -0.07). Estimates, per-seed fits averaged.
SP_SHARPNESS_SLOPE = (0.7, 1.3)
MUP_SHARPNESS_SLOPE = (-0.3, 0.3)


def _best_rates(view, param: str) -> tuple[list[float], str]:
  """The best log2 base rate at each width (sorted by width), and them as text."""
  table = view.of(F.BEST_LOG2_LR).select(param=param)
  if len(table) < 2:
    raise claims.MissingMetric(f"fewer than two best_log2_lr/{param} metrics")
  widths, rates = table.means("N")
  return rates, f"{param} best log2 rate by width: " + ", ".join(f"{w}: {r:g}" for w, r in zip(widths, rates))


def _best_rate_spread(view) -> tuple[bool, str]:
  rates, text = _best_rates(view, "mup")
  spread = max(rates) - min(rates)
  return spread <= LR_TRANSFER_STEPS, text + f" (spread {spread:g} grid steps)"


def _two_widest_gaps(view, family, first_step: int = 0):
  """(the two widest muP widths, {step: relative gap of their seed means}, the widest's series by step) over the
  logged steps >= first_step that both have."""
  table = view.of(family).select(param="mup")
  widths = table.values("N")
  if len(widths) < 2:
    raise claims.MissingMetric(f"fewer than two widths of {family.template} for mup")
  wide, wider = (dict(table.select(N=w).series("step")) for w in widths[-2:])
  gaps = {step: abs(wide[step].mean - wider[step].mean) / wider[step].mean
          for step in wider if step in wide and step >= first_step}
  if not gaps:
    raise claims.MissingMetric(f"no {family.template} for mup at a step >= {first_step}")
  return widths[-2:], gaps, wider


def _loss_curves_agree(family, nets: str = "nets"):
  """The claim function: the two widest muP `nets`' mean test loss (`family`) within LOSS_CURVE_RTOL at every step."""

  def check(view) -> tuple[bool, str]:
    widths, gaps, _ = _two_widest_gaps(view, family)
    worst = max(gaps, key=gaps.get)
    return gaps[worst] <= LOSS_CURVE_RTOL, (f"{nets} N={widths[0]} vs N={widths[1]}: largest relative gap "
                                            f"{gaps[worst]:.4f} at step {worst} over {len(gaps)} logged steps")
  return check


def _mup_coordinates_flat(view) -> tuple[bool, str]:
  worst, where = 0.0, None
  for (layer, step), table in view.of(F.COORDINATE).select(param="mup").groups("layer", "step").items():
    _, means = table.means("N")
    ratio = max(means) / min(means)
    if ratio > worst:
      worst, where = ratio, (layer, step)
  if where is None:
    raise claims.MissingMetric("no coordinate_abs_mean/mup metrics")
  return worst <= MUP_COORDINATE_MAX_RATIO, f"largest max/min over widths {worst:.3f} (layer {where[0]}, step {where[1]})"


def _sharpness_agrees(view) -> tuple[bool, str]:
  widths, gaps, wider = _two_widest_gaps(view, F.SHARPNESS, first_step=1)
  worst = max(gaps, key=gaps.get)
  levels = ", ".join(f"{step}: {wider[step].mean:.2f}" for step in sorted(wider))
  return gaps[worst] <= SHARPNESS_RTOL, (f"N={widths[0]} vs N={widths[1]}: largest relative gap {gaps[worst]:.3f} at "
                                         f"step {worst}; lr lambda_max / 2 of N={widths[1]} by step: {levels}")


def _ensemble_bias(view) -> tuple[bool, str]:
  """The narrowest width's ensembles (largest K; group i = the i-th K consecutive seeds) against the widest single
  nets (one-sided Welch), and against the mean loss of their own members (one-sided paired t: what ensembling
  removes)."""
  from harness import stats  # pylint: disable=import-outside-toplevel
  table = view.of(F.ENSEMBLE_LOSS).select(param="mup")
  widths, sizes = table.values("N"), table.values("K")
  if len(widths) < 2 or len(sizes) < 2:
    raise claims.MissingMetric("ensemble_test_loss/mup needs two widths and two ensemble sizes")
  k = sizes[-1]
  ensemble = table.one(N=widths[0], K=k)
  wide, narrow = table.one(N=widths[-1], K=1), table.one(N=widths[0], K=1)
  members = [narrow.values[i * k:(i + 1) * k] for i in ensemble.seeds]
  if any(len(m) != k for m in members):
    raise claims.MissingMetric(f"the single nets of N={widths[0]} do not cover the ensembles' {k}-seed groups")
  member_means = [sum(m) / k for m in members]
  bias = stats.welch_t_test(ensemble.values, wide.values, alternative="greater")
  gain = stats.paired_t_test(member_means, ensemble.values, alternative="greater")
  ok = bias.p_value < CLAIM_ALPHA and gain.p_value < CLAIM_ALPHA
  return ok, (f"N={widths[0]}: members {sum(member_means) / len(member_means):.4f} > ensembles of {k} "
              f"{ensemble.mean:.4f} (paired p={gain.p_value:.2g}) > N={widths[-1]} single {wide.mean:.4f} "
              f"(Welch p={bias.p_value:.2g})")


def _sp_rate_moves(view) -> tuple[bool, str]:
  rates, text = _best_rates(view, "sp")
  shift = rates[0] - rates[-1]
  return shift >= SP_RATE_MIN_SHIFT, text + f" (widest {shift:g} grid steps below the base width's)"


_LAST = {"param": "mup", "step": LARGEST}


def _falls_with_width(family) -> claims.AllOf:
  """At the last step, each step in N a significant decrease (one-sided Welch) and a slope whose CI is below 0."""
  return claims.AllOf((
      claims.StepwiseDecrease(family, along="N", alpha=CLAIM_ALPHA, where=_LAST),
      claims.PowerLawSlope(family, x="N", interval=(-math.inf, 0.0), where=_LAST, ci_inside=True)))


CLAIMS = (
    claims.Claim("mup_learning_rate_transfers",
                 "muP: the best base learning rate is the same at every width (Yang & Hu 2021; tuned at one width, "
                 "reused at all, as Vyas et al. do)",
                 claims.Predicate(f"spread of the best log2 base rate over widths <= {LR_TRANSFER_STEPS} grid step",
                                  _best_rate_spread, reads=(F.BEST_LOG2_LR,))),
    claims.Claim("standard_parameterization_learning_rate_moves",
                 "... while in the standard parameterization the best rate falls with width (Yang & Hu 2021: SP's "
                 "stable rate shrinks like 1/width), so a rate tuned at one width does not transfer",
                 claims.Predicate(f"best log2 base rate at the widest width <= that at the base width - "
                                  f"{SP_RATE_MIN_SHIFT}", _sp_rate_moves, reads=(F.BEST_LOG2_LR,)),
                 tiers=RESOLVING_TIERS),
    claims.Claim("loss_curves_agree_across_widths",
                 "muP nets of different widths trained online have nearly identical loss curves (2305.18411 abstract)",
                 claims.Predicate(f"the two widest nets' mean test loss within {LOSS_CURVE_RTOL:g} (relative) at every "
                                  "logged step", _loss_curves_agree(F.TEST_LOSS), reads=(F.TEST_LOSS,))),
    claims.Claim("predictions_agree_more_with_width",
                 "muP: pointwise disagreement with the widest net, D_N, falls with width (2305.18411: predictions "
                 "agree pointwise at realistic widths)",
                 _falls_with_width(F.DISAGREEMENT)),
    claims.Claim("output_variance_is_one_over_width",
                 "the initialisation-dependent output variance scales like 1/N (2305.18411: the leading finite-width "
                 "deviation, removed by ensembling)",
                 claims.PowerLawSlope(F.OUTPUT_VARIANCE, x="N", interval=VARIANCE_SLOPE, where=_LAST),
                 tiers=RESOLVING_TIERS),
    claims.Claim("ensembles_of_narrow_nets_lose_to_one_wide_net",
                 "bias of narrower width: an ensemble of narrow nets is worse than one wide net, though ensembling "
                 "helps (2305.18411 abstract)",
                 claims.Predicate("narrowest-width ensembles' test loss above the widest single nets' (one-sided Welch) "
                                  f"and below their own members' mean (one-sided paired t), alpha {CLAIM_ALPHA:g}",
                                  _ensemble_bias,
                                  reads=(F.ENSEMBLE_LOSS,)),
                 tiers=RESOLVING_TIERS),
    claims.Claim("preactivation_distributions_converge",
                 "muP: the pre-activation distribution of a hidden layer converges with width (2305.18411 abstract: "
                 "preactivation distributions are consistent across large widths)",
                 claims.PowerLawSlope(F.PREACT_DISTANCE, x="N", interval=(-math.inf, 0.0), where={"param": "mup"},
                                      ci_inside=True),
                 tiers=RESOLVING_TIERS),
    claims.Claim("sharpness_consistent_across_widths",
                 "muP: the sharpness (top eigenvalue of the rate-preconditioned loss Hessian, against 2/learning rate) "
                 "follows the same trajectory at every large width (2305.18411 abstract: edge of stability phenomena "
                 "are consistent across large widths)",
                 claims.Predicate(f"the two widest nets' mean lr lambda_max / 2 within {SHARPNESS_RTOL:g} (relative) "
                                  "at every logged step after 0", _sharpness_agrees, reads=(F.SHARPNESS,)),
                 tiers=RESOLVING_TIERS),
    claims.Claim("initial_sharpness_scales_as_parameterization_predicts",
                 "at a base rate tuned at one width, the standard parameterization starts ever further beyond the "
                 "edge of stability as width grows (lr lambda_max ~ N), muP at the same place at every width",
                 claims.AllOf((
                     claims.PowerLawSlope(F.SHARPNESS, x="N", interval=SP_SHARPNESS_SLOPE,
                                          where={"param": "sp", "step": 0}),
                     claims.PowerLawSlope(F.SHARPNESS, x="N", interval=MUP_SHARPNESS_SLOPE,
                                          where={"param": "mup", "step": 0}))),
                 tiers=RESOLVING_TIERS),
    claims.Claim("cnn_loss_curves_agree_across_widths",
                 "the same for a convolutional net: muP CNNs of different widths trained online have nearly identical "
                 "loss curves (2305.18411: across a variety of architectures)",
                 claims.Predicate(f"the two widest CNNs' mean test loss within {LOSS_CURVE_RTOL:g} (relative) at every "
                                  "logged step", _loss_curves_agree(F.CNN_TEST_LOSS, "CNNs"),
                                  reads=(F.CNN_TEST_LOSS,)),
                 tiers=CNN_TIERS),
    claims.Claim("cnn_predictions_agree_more_with_width",
                 "muP CNNs: pointwise disagreement with the widest CNN falls with width",
                 _falls_with_width(F.CNN_DISAGREEMENT),
                 tiers=CNN_TIERS),
    claims.Claim("mup_coordinates_stay_flat",
                 "muP: every hidden layer's activation scale stays the same across widths over the first steps (the "
                 "microsoft/mup coordinate check)",
                 claims.Predicate(f"max/min over widths of mean |h| <= {MUP_COORDINATE_MAX_RATIO:g} at every layer "
                                  "and step", _mup_coordinates_flat, reads=(F.COORDINATE,))),
)
