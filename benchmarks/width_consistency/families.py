"""The metrics of `width_consistency`, declared once.

Labels: param (mup: the maximal-update parameterization; sp: standard, the contrast), N (hidden width), step
(optimizer steps taken, at the logged steps), K (ensemble size), layer (index of a hidden layer's output), lr
(log2_lr: base learning rate, log2 on a grid), seed (initialization; every net of every width sees the same stream).
Rules: per-seed values by Welch's t-test against the blessed seeds; across-seed statistics (one value per run)
are compared by their rule only where a relative tolerance is justified, else not blessed.
"""
from __future__ import annotations

from harness.families import Family

PARAMS = ("mup", "sp")
WELCH = {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"}
_P = {"param": PARAMS}

TEST_LOSS = Family("test_loss/{param}/N={N:d}/step={step:d}", unit="nats", rule=WELCH, choices=_P,
                   description="cross-entropy on the fixed evaluation set, one net per seed")
TEST_ACC = Family("test_acc/{param}/N={N:d}/step={step:d}", unit="fraction", rule=WELCH, choices=_P,
                  description="accuracy on the fixed evaluation set")
DISAGREEMENT = Family("disagreement/{param}/N={N:d}/step={step:d}", unit="logit^2", rule=WELCH, choices=_P,
                      description="D_N(t) = mean over the evaluation set of ||f_N(x) - f_widest(x)||^2, same seed")
DISAGREEMENT_SLOPE = Family("slope/disagreement_vs_N/{param}/step={step:d}", unit="1", rule=WELCH, choices=_P,
                            description="per seed: log-log slope of D_N(t) in N over the widths below the widest")
OUTPUT_VARIANCE = Family("output_seed_variance/{param}/N={N:d}/step={step:d}", unit="logit^2", choices=_P,
                         description="mean over the evaluation set and outputs of the variance across seeds of f_N(x)")
ENSEMBLE_LOSS = Family("ensemble_test_loss/{param}/N={N:d}/K={K:d}", unit="nats", rule=WELCH, choices=_P,
                       description="test loss of the logit average of K nets of width N (disjoint groups of seeds; "
                                   "the 'seed' of a value is its group's index) at the last step")
COORDINATE = Family("coordinate_abs_mean/{param}/layer={layer:d}/N={N:d}/step={step:d}", unit="1", rule=WELCH,
                    choices=_P, description="mean |activation| of a hidden layer's output on a training batch "
                                            "after `step` steps (the microsoft/mup coordinate check)")
LR_SWEEP_LOSS = Family("lr_sweep_test_loss/{param}/N={N:d}/log2_lr={log2_lr:g}", unit="nats", rule=WELCH, choices=_P,
                       description="test loss at the end of a short run at base learning rate 2^log2_lr")
BEST_LOG2_LR = Family("best_log2_lr/{param}/N={N:d}", unit="log2", choices=_P,
                      description="the grid's base learning rate with the lowest mean sweep loss at width N")
PREACT_DISTANCE = Family("preactivation_ks/{param}/N={N:d}", unit="1", rule=WELCH, choices=_P,
                         description="two-sample Kolmogorov-Smirnov statistic between the last hidden layer's "
                                     "pre-activations (every unit, the first preact_examples evaluation images) of "
                                     "width N and of the widest net, same seed, at the last step")
SHARPNESS = Family("sharpness_ratio/{param}/N={N:d}/step={step:d}", unit="1", rule=WELCH, choices=_P,
                   description="lr * lambda_max(P^1/2 H P^1/2) / 2 on a fixed training batch after `step` steps "
                               "(harness.sharpness; P the muP rate multipliers; 1 = the edge of stability)")
_CNN = {"param": ("mup",)}
CNN_TEST_LOSS = Family("cnn_test_loss/{param}/N={N:d}/step={step:d}", unit="nats", rule=WELCH, choices=_CNN,
                       description="the small CNN (phases.cnn_spec: 3x3 convs with N channels, global average pool) "
                                   "in muP, cross-entropy on the evaluation set, one net per seed")
CNN_DISAGREEMENT = Family("cnn_disagreement/{param}/N={N:d}/step={step:d}", unit="logit^2", rule=WELCH,
                          choices=_CNN, description="the small CNN's D_N(t): mean over the evaluation set of "
                                                    "||f_N(x) - f_widest(x)||^2, same seed")
CNN_LR_SWEEP_LOSS = Family("cnn_lr_sweep_test_loss/{param}/N={N:d}/log2_lr={log2_lr:g}", unit="nats", rule=WELCH,
                           choices=_CNN, description="the small CNN's test loss after the sweep's steps at base "
                                                     "rate 2^log2_lr, at the base width")
FAMILIES = (TEST_LOSS, TEST_ACC, DISAGREEMENT, DISAGREEMENT_SLOPE, OUTPUT_VARIANCE, ENSEMBLE_LOSS, COORDINATE,
            LR_SWEEP_LOSS, BEST_LOG2_LR, PREACT_DISTANCE, SHARPNESS, CNN_TEST_LOSS, CNN_DISAGREEMENT,
            CNN_LR_SWEEP_LOSS)
