"""The metrics of `finite_vs_infinite`, declared once.

Labels: arch (config.ARCHITECTURES), n (width: hidden units of the FCN, channels of the CNNs), setting (small_lr,
large_lr, weight_decay: how the finite nets are trained), model (single: one net; centered: one net's f_t - f_0;
single_own_init: one net against the kernel's gradient flow started from the same initial function; ensemble /
centered_ensemble: the mean over the run's seeds), kernel (nngp, ntk), when (a setting: the NTK's gradient-flow
prediction at that setting's time t; converged: kernel ridge regression, t = inf), precision, n_train.
Distances are relative Frobenius norms. Rules: per-seed values by Welch's t-test against the blessed seeds; float64
kernel predictions (deterministic) relative 1e-6; across-seed values (ensembles; one number per run) and float32 kernel
regression (its error depends on the BLAS's summation order, by design of the study) are not blessed: the claims read
them.
"""
from __future__ import annotations

from harness.families import Family

from benchmarks.finite_vs_infinite.config import ARCHITECTURES, SETTINGS

WELCH = {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"}
FLOAT64_RULE = {"kind": "relative", "rtol": 1e-6}
SINGLE_MODELS = ("single", "centered", "single_own_init")
ENSEMBLE_MODELS = ("ensemble", "centered_ensemble")
_ARCH = {"arch": ARCHITECTURES}
_SETTING = {"setting": SETTINGS}
_SCORE = {"score": ("acc", "mse")}

# -- 1, 2: the empirical NTK ----------------------------------------------------------------------------------------
NTK_INIT_DISTANCE = Family("ntk_init_distance/{arch}/n={n:d}", unit="1", rule=WELCH, choices=_ARCH,
                           description="||Theta_0 - Theta_inf||_F / ||Theta_inf||_F on the NTK probe images: one net's "
                                       "empirical NTK at initialisation against the analytic NTK")
NTK_INIT_BIAS_SQ = Family("ntk_init_bias_sq/{arch}/n={n:d}", unit="1", rule=WELCH, choices=_ARCH,
                          description="<D_a, D_b>_F / ||Theta_inf||_F^2 for a disjoint pair of the bias study's seeds "
                                      "(the value's 'seed' is the pair's index), D = Theta_0 - Theta_inf on the probe "
                                      "images: unbiased for the squared relative bias ||E Theta_0 - Theta_inf||^2 / "
                                      "||Theta_inf||^2 (a pair may give < 0; phases.paired_bias_sq)")
NTK_CHANGE = Family("ntk_change/{arch}/n={n:d}", unit="1", rule=WELCH, choices=_ARCH,
                    description="||Theta_t - Theta_0||_F / ||Theta_0||_F: one net's empirical NTK after training at "
                                "the small rate against its own at initialisation")
# -- 3: function space ---------------------------------------------------------------------------------------------
OUTPUT_DISTANCE = Family("output_distance/{arch}/{setting}/{model}/n={n:d}", unit="1", rule=WELCH,
                         choices={**_ARCH, **_SETTING, "model": SINGLE_MODELS},
                         description="||g - mu||_F / ||mu_t||_F on the test images; single / centered: g = f_t / "
                                     "f_t - f_0, mu = mu_t the NTK's gradient-flow mean at the same t; "
                                     "single_own_init: mu = f_0 + the NTK's gradient flow on the residual y - f_0")
OUTPUT_BIAS_SQ = Family("output_bias_sq/{arch}/n={n:d}", unit="1", rule=WELCH, choices=_ARCH,
                        description="<Delta_a, Delta_b>_F / ||mu_t||_F^2 for a disjoint pair of the bias study's seeds, "
                                    "Delta = f_t - (f_0 + the NTK's gradient flow from f_0) on the test images: "
                                    "unbiased for the squared relative bias of the ensemble mean, ||E f_t - mu_t||^2 / "
                                    "||mu_t||^2, without the O(1/S) variance a seed-average adds")
ENSEMBLE_DISTANCE = Family("ensemble_output_distance/{arch}/{setting}/{model}/n={n:d}", unit="1",
                           choices={**_ARCH, **_SETTING, "model": ENSEMBLE_MODELS},
                           description="||mean_s g_s - mu_t||_F / ||mu_t||_F: the seed-ensemble's distance from the "
                                       "NTK's gradient-flow mean")
# -- 4, 5: performance ---------------------------------------------------------------------------------------------
TEST_SCORE = Family("test_{score}/{arch}/{setting}/{model}/n={n:d}", unit="fraction (acc) / squared error (mse)",
                    rule=WELCH, choices={**_SCORE, **_ARCH, **_SETTING, "model": ("single", "centered")},
                    description="test accuracy / MSE of one finite net (f_t, or f_t - f_0 when centered)")
ENSEMBLE_SCORE = Family("ensemble_test_{score}/{arch}/{setting}/{model}/n={n:d}",
                        unit="fraction (acc) / squared error (mse)",
                        choices={**_SCORE, **_ARCH, **_SETTING, "model": ENSEMBLE_MODELS},
                        description="test accuracy / MSE of the mean output over the seeds")
PERFORMANCE_GAP = Family("gap_test_{score}/{arch}/{setting}/{model}/n={n:d}", unit="fraction / squared error",
                         rule=WELCH, choices={**_SCORE, **_ARCH, **_SETTING, "model": ("single", "centered")},
                         description="finite minus kernel: test score of the net minus that of the NTK's gradient-flow "
                                     "mean at the same t (signed: > 0 in acc, < 0 in mse means the finite net is better)")
ENSEMBLE_GAP = Family("ensemble_gap_test_{score}/{arch}/{setting}/{model}/n={n:d}", unit="fraction / squared error",
                      choices={**_SCORE, **_ARCH, **_SETTING, "model": ENSEMBLE_MODELS},
                      description="the same for the seed-ensemble's mean output")
KERNEL_SCORE = Family("kernel_test_{score}/{arch}/{kernel}/{when}", unit="fraction (acc) / squared error (mse)",
                      rule=FLOAT64_RULE, choices={**_SCORE, **_ARCH, "kernel": ("nngp", "ntk"),
                                                  "when": SETTINGS + ("converged",)},
                      description="the analytic kernel's test score: the NTK's gradient-flow mean at a setting's "
                                  "time t, or kernel ridge regression (t = inf, diag_reg chosen on a validation split "
                                  "of the training set) for the NNGP and NTK")
# -- 6: precision --------------------------------------------------------------------------------------------------
PRECISION_ACC = Family("precision/kernel_test_acc/{kernel}/{precision}/n_train={n:d}", unit="fraction",
                       rule=FLOAT64_RULE, rule_where={"precision": "float64"},
                       choices={"kernel": ("nngp", "ntk"), "precision": ("float32", "float64")},
                       description="ridgeless regression (diag_reg 0) with the FCN kernel computed and solved in "
                                   "`precision`, test accuracy")
PRECISION_ERROR = Family("precision/prediction_error/{kernel}/n_train={n:d}", unit="1",
                         choices={"kernel": ("nngp", "ntk")},
                         description="||mu_float32 - mu_float64||_F / ||mu_float64||_F of the ridgeless test "
                                     "predictions")
CONDITION_NUMBER = Family("precision/condition_number/{kernel}/n_train={n:d}", unit="1", rule=FLOAT64_RULE,
                          choices={"kernel": ("nngp", "ntk")},
                          description="lambda_max / lambda_min of the float64 training kernel")
FLOAT32_BREAKDOWN = Family("precision/float32_breakdown_n_train/{kernel}", unit="images",
                           choices={"kernel": ("nngp", "ntk")},
                           description="training-set size where the float32 prediction error crosses "
                                       "phases.BREAKDOWN_ERROR (log-log interpolation; absent when not reached)")

FAMILIES = (NTK_INIT_DISTANCE, NTK_INIT_BIAS_SQ, NTK_CHANGE, OUTPUT_DISTANCE, OUTPUT_BIAS_SQ, ENSEMBLE_DISTANCE,
            TEST_SCORE, ENSEMBLE_SCORE, PERFORMANCE_GAP, ENSEMBLE_GAP, KERNEL_SCORE, PRECISION_ACC, PRECISION_ERROR,
            CONDITION_NUMBER, FLOAT32_BREAKDOWN)
