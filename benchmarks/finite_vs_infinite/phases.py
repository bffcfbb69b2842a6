"""The run of `finite_vs_infinite`, one function per phase (package docstring)."""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from harness import data, training

from benchmarks.finite_vs_infinite import families as F
from benchmarks.finite_vs_infinite.architectures import PRECISION_B_STD, PRECISION_W_STD, architecture
from benchmarks.finite_vs_infinite.config import FiniteVsInfiniteConfig

NUM_CLASSES = 10
KERNELS = ("nngp", "ntk")
DIAG_REG_CANDIDATES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
BREAKDOWN_ERROR = 0.01   # float32 kernel regression "breaks down" where its test predictions are 1% off float64's
PRECISION_DEPTH = 2      # hidden layers of the precision study's FCN


@dataclasses.dataclass(frozen=True)
class Setting:
  """How the finite nets of one setting are trained, and the NTK's gradient-flow mean at the same time t."""
  name: str
  learning_rate: float
  weight_decay: float
  mean: np.ndarray          # mu_t on the test images (n_test, k)

  def time(self, steps: int) -> float:
    return self.learning_rate * steps


@dataclasses.dataclass
class KernelSetup:
  """The analytic kernels of one architecture on the training and test images (float64)."""
  ntk_train: np.ndarray
  ntk_test_train: np.ndarray
  nngp_train: np.ndarray
  nngp_test_train: np.ndarray

  def flow(self, y_train: np.ndarray, steps: int, learning_rate: float) -> np.ndarray:
    """The NTK's gradient-flow mean on the test images at t = learning_rate x steps from a zero function, fitting
    y_train (harness.nets.predict.gradient_descent_mse_mean; linear in y_train)."""
    from harness.nets import predict  # pylint: disable=import-outside-toplevel
    return predict.gradient_descent_mse_mean(self.ntk_train, self.ntk_test_train, y_train, t=float(steps),
                                             learning_rate=learning_rate)


def critical_learning_rate(ntk_train: np.ndarray, num_outputs: int) -> float:
  """2 N k / lambda_max(Theta): with the loss 1/(2 N k) |f - y|^2 (harness.training) a full-batch step moves the
  training outputs by -(eta / (N k)) Theta (f - y) in the kernel regime, which diverges for larger eta."""
  return float(2.0 * ntk_train.shape[0] * num_outputs / np.linalg.eigvalsh(ntk_train)[-1])


def relative_distance(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> float:
  return float(np.linalg.norm(a - b) / np.linalg.norm(scale))


def paired_bias_sq(deviations: list[np.ndarray], scale: np.ndarray) -> list[float]:
  """<D_a, D_b> / |scale|^2 over disjoint pairs of seeds (a, b) = (0, 1), (2, 3), ...: each unbiased for the squared
  relative bias |E D|^2 / |scale|^2 (independent seeds), and independent of each other, so their mean has an honest
  standard error and can be bootstrapped; |mean_s D_s|^2 would add the O(1/S) variance tr Cov(D) / S. One value per
  pair (an odd last seed is left out)."""
  norm = float(np.sum(np.asarray(scale) ** 2))
  return [float(np.sum(deviations[i] * deviations[i + 1]) / norm) for i in range(0, len(deviations) - 1, 2)]


def scores(prediction: np.ndarray, y: np.ndarray) -> dict[str, float]:
  return {"acc": float(np.mean(prediction.argmax(1) == y.argmax(1))), "mse": float(np.mean((prediction - y) ** 2))}


def load_data(ctx, config: FiniteVsInfiniteConfig) -> tuple[data.Arrays, data.Arrays]:
  """Official train images [0, n_train) and test [0, n_test), average-pooled, standardised on the training images;
  centered one-hot targets (the same data for every seed: seeds draw the initialisations)."""
  train = ctx.load_dataset("cifar10", split="train", pool=config.n_train)
  test = ctx.load_dataset("cifar10", split="test", pool=config.n_test)
  return data.preprocess(train, test, downsample=config.downsample, dtype=config.dtype)


def kernels(spec, train: data.Arrays, test: data.Arrays, dtype: str) -> KernelSetup:
  both = np.concatenate([train.x, test.x])
  k = spec.kernel(both, None, get=KERNELS, dtype=dtype)
  n = len(train.x)
  out = {name: np.asarray(k[name], dtype=np.float64) for name in KERNELS}
  return KernelSetup(out["ntk"][:n, :n], out["ntk"][n:, :n], out["nngp"][:n, :n], out["nngp"][n:, :n])


def settings(config: FiniteVsInfiniteConfig, setup: KernelSetup, y_train: np.ndarray) -> dict[str, Setting]:
  critical = critical_learning_rate(setup.ntk_train, NUM_CLASSES)
  small = config.lr_factor * critical
  rates = {"small_lr": (small, 0.0), "large_lr": (config.large_lr_factor * critical, 0.0),
           "weight_decay": (small, config.weight_decay_time / (small * config.steps))}
  return {name: Setting(name, rates[name][0], rates[name][1], setup.flow(y_train, config.steps, rates[name][0]))
          for name in config.settings}


def record_kernel_scores(ctx, config, arch: str, setup: KernelSetup, train, test, plan: dict[str, Setting]) -> None:
  from harness.nets import predict  # pylint: disable=import-outside-toplevel
  for setting in plan.values():
    for score, value in scores(setting.mean, test.y).items():
      ctx.record(F.KERNEL_SCORE, value, score=score, arch=arch, kernel="ntk", when=setting.name)
  for kernel, (k_train, k_test) in (("nngp", (setup.nngp_train, setup.nngp_test_train)),
                                    ("ntk", (setup.ntk_train, setup.ntk_test_train))):
    reg, _ = predict.select_diag_reg(k_train, train.y, DIAG_REG_CANDIDATES)
    ctx.note(f"diag_reg/{arch}/{kernel}", reg)
    mean = predict.gp_posterior(k_train, k_test, train.y, diag_reg=reg).mean
    for score, value in scores(mean, test.y).items():
      ctx.record(F.KERNEL_SCORE, value, score=score, arch=arch, kernel=kernel, when="converged")


def _train(model, train, config, setting: Setting, f0_train: np.ndarray | None = None) -> None:
  """Full-batch gradient descent for config.steps steps (harness.training.gradient_descent); centered (f_t - f_0 fits
  y, i.e. f_t fits y + f_0) when the initial training outputs f0_train are given."""
  targets = train.y if f0_train is None else train.y + f0_train
  training.gradient_descent(model, train.x, targets, setting.learning_rate, config.steps, setting.weight_decay)


def run_width(config: FiniteVsInfiniteConfig, ctx, arch: str, spec, width: int, setup: KernelSetup, train, test,
              plan: dict[str, Setting]) -> None:
  """Every seed's net of one width: its empirical NTK before and after training at the small rate, its outputs after
  each setting's training (the small rate as is, and centered in every setting); then the ensembles."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  probe = train.x[:config.ntk_points]
  theta_inf = setup.ntk_train[:config.ntk_points, :config.ntk_points]
  small = plan["small_lr"]
  kernel_scores = {name: scores(s.mean, test.y) for name, s in plan.items()}
  here = {"small_lr"} | (set(plan) if width in config.widths(arch)[-config.setting_widths:] else set())
  finals = {("small_lr", "single"): []}
  finals.update({(name, "centered"): [] for name in here})

  def record_outputs(prediction: np.ndarray, setting: Setting, model_name: str, seed: int) -> None:
    ctx.record(F.OUTPUT_DISTANCE, relative_distance(prediction, setting.mean, setting.mean), seed=seed, arch=arch,
               setting=setting.name, model=model_name, n=width)
    for score, value in scores(prediction, test.y).items():
      labels = dict(score=score, arch=arch, setting=setting.name, model=model_name, n=width)
      ctx.record(F.TEST_SCORE, value, seed=seed, **labels)
      ctx.record(F.PERFORMANCE_GAP, value - kernel_scores[setting.name][score], seed=seed, **labels)
    finals[setting.name, model_name].append(prediction)

  for seed in ctx.seeds:
    model = spec.keras_model(width=width, input_shape=train.x.shape[1:], num_outputs=NUM_CLASSES,
                             parameterization="ntk", seed=seed, dtype=config.finite_dtype)
    initial = model.get_weights()
    f0_train, f0_test = nets.outputs(model, train.x), nets.outputs(model, test.x)
    theta_0 = np.asarray(nets.empirical_ntk(model, probe), dtype=np.float64)
    ctx.record(F.NTK_INIT_DISTANCE, relative_distance(theta_0, theta_inf, theta_inf), seed=seed, arch=arch, n=width)

    _train(model, train, config, small)
    f_t = nets.outputs(model, test.x)
    theta_t = np.asarray(nets.empirical_ntk(model, probe), dtype=np.float64)
    ctx.record(F.NTK_CHANGE, relative_distance(theta_t, theta_0, theta_0), seed=seed, arch=arch, n=width)
    own = f0_test + setup.flow(train.y - f0_train, config.steps, small.learning_rate)
    ctx.record(F.OUTPUT_DISTANCE, relative_distance(f_t, own, small.mean), seed=seed, arch=arch, setting="small_lr",
               model="single_own_init", n=width)
    record_outputs(f_t, small, "single", seed)

    for setting in (s for s in plan.values() if s.name in here):
      model.set_weights(initial)
      try:
        _train(model, train, config, setting, f0_train)
      except FloatingPointError:   # the setting's result at this width and seed: no metrics, a note (claims see fewer)
        ctx.note(f"diverged/{arch}/{setting.name}/n={width}/seed={seed}", setting.learning_rate)
        continue
      record_outputs(nets.outputs(model, test.x) - f0_test, setting, "centered", seed)

  for (name, model_name), predictions in finals.items():
    if not predictions:
      continue
    ensemble = np.mean(predictions, axis=0)
    labels = dict(arch=arch, setting=name, model="centered_ensemble" if model_name == "centered" else "ensemble",
                  n=width)
    ctx.record(F.ENSEMBLE_DISTANCE, relative_distance(ensemble, plan[name].mean, plan[name].mean), **labels)
    for score, value in scores(ensemble, test.y).items():
      ctx.record(F.ENSEMBLE_SCORE, value, score=score, **labels)
      ctx.record(F.ENSEMBLE_GAP, value - kernel_scores[name][score], score=score, **labels)


def run_bias(config: FiniteVsInfiniteConfig, ctx, arch: str, spec, width: int, setup: KernelSetup, train, test,
             plan: dict[str, Setting]) -> None:
  """The ensemble biases at one width over the bias study's seeds (config.bias_seeds): of the initial empirical NTK
  against the analytic one, and of the trained outputs f_t (small rate) against the kernel's gradient flow from the
  same initial function; one value per disjoint pair of seeds (paired_bias_sq), labelled by the pair's index."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  probe = train.x[:config.ntk_points]
  theta_inf = setup.ntk_train[:config.ntk_points, :config.ntk_points]
  small = plan["small_lr"]
  ntk_deviations, output_deviations = [], []
  for seed in config.bias_seeds:
    model = spec.keras_model(width=width, input_shape=train.x.shape[1:], num_outputs=NUM_CLASSES,
                             parameterization="ntk", seed=seed, dtype=config.finite_dtype)
    f0_train, f0_test = nets.outputs(model, train.x), nets.outputs(model, test.x)
    ntk_deviations.append(np.asarray(nets.empirical_ntk(model, probe), dtype=np.float64) - theta_inf)
    _train(model, train, config, small)
    own = f0_test + setup.flow(train.y - f0_train, config.steps, small.learning_rate)
    output_deviations.append(nets.outputs(model, test.x) - own)
  for pair, value in enumerate(paired_bias_sq(ntk_deviations, theta_inf)):
    ctx.record(F.NTK_INIT_BIAS_SQ, value, seed=pair, arch=arch, n=width)
  for pair, value in enumerate(paired_bias_sq(output_deviations, small.mean)):
    ctx.record(F.OUTPUT_BIAS_SQ, value, seed=pair, arch=arch, n=width)


def run_architecture(config: FiniteVsInfiniteConfig, ctx, arch: str, train, test) -> None:
  spec = architecture(arch, config.depth)
  setup = kernels(spec, train, test, config.dtype)
  plan = settings(config, setup, train.y)
  for name, setting in plan.items():
    ctx.note(f"learning_rate/{arch}/{name}", setting.learning_rate)
    ctx.note(f"weight_decay/{arch}/{name}", setting.weight_decay)
  record_kernel_scores(ctx, config, arch, setup, train, test, plan)
  for width in ctx.progress(config.widths(arch)):
    run_width(config, ctx, arch, spec, width, setup, train, test, plan)
  if arch in config.bias_architectures:
    for width in ctx.progress(config.bias_widths(arch)):
      run_bias(config, ctx, arch, spec, width, setup, train, test, plan)


# -- 6: precision --------------------------------------------------------------------------------------------------
def breakdown_size(sizes, errors, threshold: float = BREAKDOWN_ERROR) -> float:
  """The training-set size where `errors` first cross `threshold`, interpolated on log-log axes (inf: never)."""
  for i, error in enumerate(errors):
    if error >= threshold:
      if i == 0:
        return float(sizes[0])
      x0, x1, y0, y1 = (math.log(v) for v in (sizes[i - 1], sizes[i], errors[i - 1], error))
      return float(math.exp(x0 + (math.log(threshold) - y0) * (x1 - x0) / (y1 - y0)))
  return math.inf


def run_precision(config: FiniteVsInfiniteConfig, ctx) -> None:
  """Ridgeless NNGP / NTK regression of a bias-free ReLU FCN on unstandardised pixels (images in [0, 1]: all
  pixel vectors share a large common component, so the kernel's small eigenvalues are far below its largest), the
  kernel computed and the system solved in float32 and in float64, for growing training sets (Lee et al. 2020,
  arXiv 2007.15801: float32 limits kernel regression beyond a critical training-set size)."""
  import scipy.linalg  # pylint: disable=import-outside-toplevel
  from harness import nets  # pylint: disable=import-outside-toplevel
  largest = max(config.precision_sizes)
  train = ctx.load_dataset("cifar10", split="train", pool=largest)
  test = ctx.load_dataset("cifar10", split="test", pool=config.precision_n_test)
  tr, te = data.preprocess(train, test, standardize=False, downsample=config.downsample, dtype="float64")
  spec = nets.serial(nets.Flatten(), *([nets.Dense(w_std=PRECISION_W_STD, b_std=PRECISION_B_STD), nets.Relu()]
                                       * PRECISION_DEPTH), nets.Dense(w_std=PRECISION_W_STD, b_std=PRECISION_B_STD))
  by_precision = {}
  for precision in ("float64", "float32"):
    k_train = spec.kernel(tr.x.astype(precision), None, get=KERNELS, dtype=precision)
    k_test = spec.kernel(te.x.astype(precision), tr.x.astype(precision), get=KERNELS, dtype=precision)
    by_precision[precision] = {g: (np.asarray(k_train[g]), np.asarray(k_test[g])) for g in KERNELS}
  for kernel in KERNELS:
    errors = []
    for n in config.precision_sizes:
      means = {}
      for precision, ks in by_precision.items():
        k_train, k_test = ks[kernel]
        y = tr.y[:n].astype(precision)
        with warnings.catch_warnings():  # ill-conditioned on purpose: the condition number is recorded below
          warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
          alpha = scipy.linalg.solve(k_train[:n, :n], y, assume_a="sym", check_finite=False)
        means[precision] = np.asarray(k_test[:, :n] @ alpha, dtype=np.float64)
        ctx.record(F.PRECISION_ACC, scores(means[precision], te.y)["acc"], kernel=kernel, precision=precision, n=n)
      eigenvalues = np.linalg.eigvalsh(by_precision["float64"][kernel][0][:n, :n])
      ctx.record(F.CONDITION_NUMBER, float(eigenvalues[-1] / eigenvalues[0]), kernel=kernel, n=n)
      errors.append(relative_distance(means["float32"], means["float64"], means["float64"]))
      ctx.record(F.PRECISION_ERROR, errors[-1], kernel=kernel, n=n)
    size = breakdown_size(config.precision_sizes, errors)
    if math.isfinite(size):
      ctx.record(F.FLOAT32_BREAKDOWN, size, kernel=kernel)
    else:  # not reached within the tier's sizes: no metric (a claim that needs it fails as missing)
      ctx.note(f"float32_breakdown/{kernel}", f"not reached up to n_train={max(config.precision_sizes)}")


def run(config: FiniteVsInfiniteConfig, ctx) -> None:
  with ctx.phase("data"):
    train, test = load_data(ctx, config)
  for arch in config.architectures:
    with ctx.phase(arch):
      run_architecture(config, ctx, arch, train, test)
  with ctx.phase("precision"):
    run_precision(config, ctx)
