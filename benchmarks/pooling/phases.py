"""The run of `pooling`, one function per phase (the parts of the package docstring)."""
from __future__ import annotations

import contextlib
import math
import tempfile
from typing import Sequence

import numpy as np

from harness import training
from harness.theory import signal_propagation as sp

from benchmarks.pooling import families as F
from benchmarks.pooling.architectures import architecture, depth_profile
from benchmarks.pooling.config import ARCHITECTURES, PoolingConfig
from benchmarks.pooling.data import blocks as data_blocks
from benchmarks.pooling.data import theory_inputs

KERNELS = ("nngp", "ntk")
NUM_CLASSES = 10
# Theory (Erf) setup of the NT colab for Xiao et al. 2020.
THEORY_SIGMA_B2 = 0.05
PHASE_SIGMA_W2 = {"ordered": 1.25, "chaotic": 1.5}  # the critical value is solved for
THEORY_N_TRAIN, THEORY_N_TEST = 64, 32
FCN_THEORY_DEPTHS = (1, 2, 5, 10, 20, 50, 100, 200, 400)
DECAY_FIT_DEPTHS = (200, 400)         # fit window of the chaotic mean-predictor decay rate
RATIO_DEPTH = 10000                   # two-point NTK ratio at criticality
CRITICAL_LINE_SIGMA_B2 = (0.05, 0.18)
DIAG_REG_CANDIDATES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
VALIDATION_SEED_KEY = 1729            # seeds the validation split of seed s's training block (with s)
# A CNN depth profile this shallow runs op by op (harness.nets.eager): on the theory inputs (96 downsampled images)
# compiling one profile costs about as much as running ten blocks op by op, and there are nine profiles a run.
EAGER_PROFILE_MAX_DEPTH = 5


# -- part 1: kernel regression -------------------------------------------------------------------
def _kernel_scores(k_train: np.ndarray, k_test_train: np.ndarray, y_train: np.ndarray, y_test: np.ndarray,
                   seed: int, solver) -> tuple[float, float, float]:
  """(test accuracy, test MSE, chosen diag_reg): diag_reg selected on a validation split of the training set."""
  from harness.nets import predict  # pylint: disable=import-outside-toplevel
  reg, _ = predict.select_diag_reg(k_train, y_train, DIAG_REG_CANDIDATES, seed=seed, solver=solver)
  mean = predict.gp_posterior(k_train, k_test_train, y_train, diag_reg=reg, solver=solver).mean
  return float(np.mean(mean.argmax(1) == y_test.argmax(1))), float(np.mean((mean - y_test) ** 2)), reg


def run_kernels(config: PoolingConfig, ctx, blocks) -> None:
  """Kernels on the run's engine (`ctx.engine`: this process, or one Beam pipeline for every architecture, depth and
  seed with --engine=beam), read back one seed's pair at a time; the regressions through a dense Cholesky or, with
  `solver_block_size`, a blocked one whose factor lives in a temporary file."""
  from harness.nets import predict  # pylint: disable=import-outside-toplevel
  depths = (config.depth,) + tuple(d for d in config.extra_kernel_depths if d != config.depth)
  points = [(arch, depth, seed) for arch in config.architectures for depth in depths for seed in ctx.seeds]
  requests = []
  for arch, depth, seed in points:
    spec, (train, test) = architecture(arch, depth), blocks[seed]
    requests += [(spec, train.x, None), (spec, test.x, train.x)]
  results = ctx.engine.kernels(requests, KERNELS, config.dtype, config.kernel_tile_size, progress=ctx.progress_bars)
  # the factor's scratch file goes to $TMPDIR (WORKSPACE: point it at a disk, not tmpfs, for the paper tier)
  with contextlib.closing(results), tempfile.TemporaryDirectory(prefix="harness-pooling-factor-") as scratch:
    solver = (predict.DENSE if config.solver_block_size is None
              else predict.Solver(config.solver_block_size, scratch))
    for arch, depth, seed in points:
      k_train, k_test = next(results), next(results)
      train, test = blocks[seed]
      for kernel in KERNELS:
        acc, mse, reg = _kernel_scores(k_train[kernel], k_test[kernel], train.y, test.y, seed, solver)
        # the depth of the claims is unlabelled; the sweep's other depths carry theirs
        family, labels = ((F.KERNEL_SCORE, {}) if depth == config.depth
                          else (F.KERNEL_SCORE_BY_DEPTH, {"depth": depth}))
        ctx.record(family, acc, seed=seed, kernel=kernel, score="acc", arch=arch, **labels)
        ctx.record(family, mse, seed=seed, kernel=kernel, score="mse", arch=arch, **labels)
        ctx.note(f"diag_reg/{kernel}/{arch}" + "".join(f"/depth={d}" for d in labels.values()) + f"/seed={seed}", reg)
      del k_train, k_test   # one pair held at a time (needs.py): not this one while the next is assembled


# -- part 2: finite networks ---------------------------------------------------------------------
def critical_learning_rate(spec, x_batch: np.ndarray, num_outputs: int) -> float:
  """2 B k / lambda_max(Theta_BB): with the loss 1/(2 B k) sum (f - y)^2 (harness.training), one SGD step moves
  the batch outputs by -(eta / (B k)) Theta_BB (f - y) in the kernel regime, which diverges for larger eta."""
  theta = np.asarray(spec.kernel(x_batch, get="ntk", dtype="float64"))
  return float(2.0 * len(x_batch) * num_outputs / np.linalg.eigvalsh(theta)[-1])


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(fit, validation) indices into a training block of n examples: a seeded random `fraction` held out."""
  order = np.random.default_rng(np.random.SeedSequence([VALIDATION_SEED_KEY, seed])).permutation(n)
  n_val = max(1, int(round(fraction * n)))
  return np.sort(order[n_val:]), np.sort(order[:n_val])


def run_finite(config: PoolingConfig, ctx, blocks) -> None:
  """Centered nets (f_t - f_0, harness.training) trained on the fit part of each training block; the epoch is
  chosen by accuracy on the held-out validation part, never on the test block."""
  for arch in config.architectures:
    spec = architecture(arch, config.depth)
    for seed in ctx.seeds:
      train, test = blocks[seed]
      fit, val = validation_split(len(train.x), config.validation_fraction, seed)
      batch = len(fit) if config.batch_size is None else min(config.batch_size, len(fit))
      learning_rate = config.lr_factor * critical_learning_rate(spec, train.x[fit[:batch]], NUM_CLASSES)
      ctx.note(f"learning_rate/{arch}/seed={seed}", learning_rate)
      model = spec.keras_model(width=config.width, input_shape=train.x.shape[1:], num_outputs=NUM_CLASSES,
                               parameterization="ntk", seed=seed, dtype=config.finite_dtype)
      result = training.train(model, train.x[fit], train.y[fit], test.x, test.y,
                              training.TrainConfig(learning_rate=learning_rate, epochs=config.epochs,
                                                   batch_size=config.batch_size, loss=config.loss, seed=seed,
                                                   center=True, eval_every=config.eval_every),
                              verbose=ctx.progress_bars, x_val=train.x[val], y_val=train.y[val])
      for split, score, value in (("test", "acc", result.test_accuracy), ("test", "mse", result.test_mse),
                                  ("train", "acc", result.train_accuracy), ("val", "acc", result.validation_accuracy)):
        ctx.record(F.FINITE_SCORE, value, seed=seed, split=split, score=score, arch=arch)
      ctx.note(f"finite_best_epoch/{arch}/seed={seed}", result.epoch)
      if result.validation_curve:
        epochs, accuracies = zip(*result.validation_curve)
        ctx.curve(f"finite_val_acc/{arch}", np.array(epochs), np.array(accuracies), seed=seed, x_label="epoch",
                  y_label="validation accuracy")
      ctx.curve(f"finite_train_loss/{arch}", np.arange(1, len(result.losses) + 1), result.losses, seed=seed,
                x_label="epoch", y_label=f"train loss ({config.loss})")


# -- part 3: theory ------------------------------------------------------------------------------
def phases_sigma_w2() -> dict[str, float]:
  """sigma_w2 of the ordered, critical (solved for) and chaotic Erf nets at THEORY_SIGMA_B2."""
  critical = sp.critical_sigma_w2("erf", THEORY_SIGMA_B2)
  return {"ordered": PHASE_SIGMA_W2["ordered"], "critical": critical, "chaotic": PHASE_SIGMA_W2["chaotic"]}


def run_mean_field(ctx) -> None:
  """Closed-form / Newton values and their Gauss-Hermite twins (label method: closed_form, quadrature)."""
  for sigma_b2 in CRITICAL_LINE_SIGMA_B2:
    for method in sp.METHODS:
      ctx.record(F.CRITICAL_SIGMA_W2, sp.critical_sigma_w2("erf", sigma_b2, method), sigma_b2=sigma_b2, method=method)
  for phase, sigma_w2 in PHASE_SIGMA_W2.items():
    for method in sp.METHODS:
      field = sp.MeanField("erf", sigma_w2, THEORY_SIGMA_B2, method)
      values = {"q_star": field.q_star, "chi_1": field.chi_1}
      if phase == "ordered":
        values["xi_1"] = field.xi_1
      else:
        values.update(c_star=field.c_star, chi_c_star=field.chi_c_star, xi_star=field.xi_star)
      for key, value in values.items():
        ctx.record(F.MEAN_FIELD, value, quantity=key, sigma_w2=sigma_w2, sigma_b2=THEORY_SIGMA_B2, method=method)
  critical = sp.critical_sigma_w2("erf", THEORY_SIGMA_B2)
  ctx.record(F.NTK_RATIO, sp.two_point_ntk_ratio("erf", critical, THEORY_SIGMA_B2, c0=0.5, depths=[RATIO_DEPTH])[0],
             act="erf", sigma_b2=THEORY_SIGMA_B2, depth=RATIO_DEPTH)
  ctx.record(F.NTK_RATIO, sp.two_point_ntk_ratio("relu", 2.0, 0.0, c0=0.5, depths=[RATIO_DEPTH], q0=1.0)[0],
             act="relu", sigma_b2=0.0, depth=RATIO_DEPTH)


def _record_profile(ctx, family, phase: str, points: Sequence[sp.DepthPoint], **labels) -> None:
  for p in points:
    ctx.record(family, p.condition_number, quantity="ntk_condition_number", phase=phase, depth=p.depth, **labels)
    ctx.record(family, p.mean_predictor_rms, quantity="ntk_mean_predictor_rms", phase=phase, depth=p.depth, **labels)


def run_fcn_depth_profile(ctx) -> None:
  x, y = theory_inputs(ctx, THEORY_N_TRAIN, THEORY_N_TEST, downsample=1, dtype="float64")
  x = x.reshape(len(x), -1)
  for phase, sigma_w2 in phases_sigma_w2().items():
    points = sp.ntk_depth_profile(sp.fcn_kernels(x, FCN_THEORY_DEPTHS, "erf", sigma_w2, THEORY_SIGMA_B2),
                                  THEORY_N_TRAIN, y)
    _record_profile(ctx, F.FCN_PROFILE, phase, points)
    if phase == "chaotic":
      fit = [p for p in points if DECAY_FIT_DEPTHS[0] <= p.depth <= DECAY_FIT_DEPTHS[1]]
      ctx.record(F.DECAY_RATE, sp.decay_rate([p.depth for p in fit], [p.mean_predictor_rms for p in fit]))
      ctx.record(F.INVERSE_XI_STAR, 1.0 / sp.MeanField("erf", sigma_w2, THEORY_SIGMA_B2).xi_star)


def run_cnn_depth_profile(config: PoolingConfig, ctx) -> None:
  """NTK condition number and mean predictor vs depth of FCN, CNN-Flatten and CNN-GAP (circular padding, Erf).

  Every depth of an architecture from one kernel call (`architectures.depth_profile`: the blocks run as one loop
  and are read out at each depth on the way); op by op up to EAGER_PROFILE_MAX_DEPTH, compiled beyond."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  x, y = theory_inputs(ctx, THEORY_N_TRAIN, THEORY_N_TEST, config.cnn_theory_downsample, "float64")
  counter = ctx.counter(len(ARCHITECTURES) * len(phases_sigma_w2()))
  op_by_op = max(config.cnn_theory_depths) <= EAGER_PROFILE_MAX_DEPTH
  for arch in ARCHITECTURES:
    for phase, sigma_w2 in phases_sigma_w2().items():
      profile = depth_profile(arch, "erf", math.sqrt(sigma_w2), math.sqrt(THEORY_SIGMA_B2), padding="CIRCULAR")
      with nets.eager() if op_by_op else contextlib.nullcontext():
        by_depth = profile.kernel(x, None, depths=config.cnn_theory_depths, get=("nngp", "ntk"), dtype="float64")
      kernels = [sp.Kernels(depth, np.asarray(by_depth[depth]["nngp"]), np.asarray(by_depth[depth]["ntk"]))
                 for depth in config.cnn_theory_depths]
      counter.advance()
      points = sp.ntk_depth_profile(kernels, THEORY_N_TRAIN, y)
      if arch == "fcn":
        _record_profile(ctx, F.SMALL_FCN_PROFILE, phase, points, px=x.shape[1])
      else:
        _record_profile(ctx, F.CNN_PROFILE, phase, points, arch=arch, px=x.shape[1])


# -- heat map (colab) ----------------------------------------------------------------------------
def run_heatmap(config: PoolingConfig, ctx) -> None:
  """Accuracy of infinite-width gradient descent over (sigma_w2, depth), as the NT colab's last figure."""
  from harness.nets import predict  # pylint: disable=import-outside-toplevel
  x, y = theory_inputs(ctx, config.heatmap_n_train, config.heatmap_n_test, 1, "float64")
  x = x.reshape(len(x), -1)
  n = config.heatmap_n_train
  labels_test = ctx.load_dataset("cifar10", split="test", pool=config.heatmap_n_test).labels
  y_centered = y - y.mean(0)
  for sigma_w2 in config.heatmap_sigma_w2:
    train_acc = {t: [] for t in config.heatmap_times}
    test_acc = {t: [] for t in config.heatmap_times}
    for k in sp.fcn_kernels(x, config.heatmap_depths, "erf", sigma_w2, config.heatmap_sigma_b2):
      ntk = k.ntk
      eta = 2.0 * y.size / np.linalg.eigvalsh(ntk[:n, :n])[-1]  # the colab's learning rate
      times = np.array(config.heatmap_times)
      both = np.concatenate([ntk[:n, :n], ntk[n:, :n]])
      out = predict.gradient_descent_mse_mean(ntk[:n, :n], both, y_centered, t=times, learning_rate=eta,
                                              diag_reg=1e-4)
      for i, t in enumerate(config.heatmap_times):
        train_acc[t].append(float(np.mean(out[i, :n].argmax(1) == y.argmax(1))))
        test_acc[t].append(float(np.mean(out[i, n:].argmax(1) == labels_test)))
    for t in config.heatmap_times:
      for split, acc in (("train", train_acc[t]), ("test", test_acc[t])):
        ctx.curve(f"heatmap/{split}_acc/t={t:g}/sigma_w2={sigma_w2:g}", config.heatmap_depths, acc,
                  x_label="depth", y_label=f"{split} accuracy")


def run(config: PoolingConfig, ctx) -> None:
  with ctx.phase("theory"):
    run_mean_field(ctx)
    run_fcn_depth_profile(ctx)
  if config.architectures:
    if config.cnn_theory_depths:
      with ctx.phase("cnn_theory"):
        run_cnn_depth_profile(config, ctx)
    with ctx.phase("data"):
      blocks = data_blocks(ctx, config)
    with ctx.phase("kernels"):
      run_kernels(config, ctx, blocks)
    with ctx.phase("finite"):
      run_finite(config, ctx, blocks)
  if config.heatmap:
    with ctx.phase("heatmap"):
      run_heatmap(config, ctx)
