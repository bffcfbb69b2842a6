"""Experiment `commutativity`: width and depth limits commute in residual nets with 1/sqrt(depth) branches.

Reproduces Hayou & Yang, "Width and Depth Limits Commute in Residual Networks" (ICML 2023, arXiv 2302.00453)
and Hayou, "Commutative Width and Depth Scaling in Deep Neural Networks" (arXiv 2310.01683): in the residual net

    Y_0 = W_in x,   Y_l = Y_{l-1} + s W_l phi(Y_{l-1}),  l = 1..L,   weights N(0, 1/fan_in),  s = L^(-1/2),

the covariance of the pre-activations converges to the same limit whether the width n or the depth L goes to
infinity first or both together, the pre-activations become Gaussian, and s = L^(-1/2) is the only branch scale
with a nontrivial limit (s = 1: the variance explodes and, for ReLU, the correlation collapses to 1; s = 1/L:
the net tends to the identity map).

Quantities (inputs: an anchor and partners at input correlations c0, all with x.x/d = 1; in the `small` tier
also pairs of real CIFAR-10 training images, each image standardised to mean 0 and x.x/d = 1):
  q_L = |Y_L(x)|^2 / n and c_L = <Y_L(x), Y_L(x')> / (|Y_L(x)| |Y_L(x')|), the neural covariance of the paper,
  in one net; their limits q(1), c(1) solve the flow of harness/theory/residual_flow.py (ReLU: q(1) = e^(1/2)
  q(0), dc/dt = (sqrt(1 - c^2) - c arccos c) / (2 pi); Erf: dK/dt = (2/pi) arcsin(2 k12 / sqrt((1 + 2 q1)(1 + 2 q2)))).

Parts (phases of the run):
1. flow: the limit c(1), q(1) (scipy solve_ivp, float64, rtol 1e-12) and the leading coefficient e_c of the
   finite-depth error c_L - c(1) = e_c / L + O(1/L^2) (Euler's method, see residual_flow).
2. infinite_width: the library's infinite-width kernel of the finite-depth net (`harness.nets` spec.kernel,
   float64) for L in `kernel_depths` and three branch scales; checked against the recursion of residual_flow.
   The kernel is evaluated op by op (XLA compilation of a 256-block unrolled graph alone takes minutes).
3. monte_carlo: finite nets over the (n, L) grid. Each net is simulated exactly in distribution by the Gram
   recursion: given Y_{l-1} (n x P for P inputs), the rows of W_l phi(Y_{l-1}) are i.i.d. N(0, G) with
   G = phi^T phi / n, because W_l is fresh Gaussian and used once (Li, Nica & Roy 2022, arXiv 2206.02768, the
   covariance Markov chain). So Y_l = Y_{l-1} + s Z A with Z n x P standard normal and A^T A = G: O(n P^2) per
   block instead of O(n^2 P). tests/benchmarks/test_commutativity.py checks it against explicit weight
   matrices, and part 6 against the library's Keras nets (two-sample KS tests). Metric per seed: the mean over
   that seed's `nets_per_seed` nets and over the input pairs of |c_{n,L} - c(1)| (an L1 distance of the random
   kernel from its deterministic limit).
   Paths to the limit: width first = the infinite-width kernel at L -> infinity (theory rate 1/L);
   depth first = L = max(depths), n growing; joint = n = L growing. At finite n the distance is dominated by
   the O(n^(-1/2)) fluctuation of c_{n,L}, uniformly in L (the commutativity), so its slope vs n is -1/2.
4. gaussianity: excess kurtosis E[y^4]/E[y^2]^2 - 3 (mean 0 known) of a pre-activation y of Y_L for one input,
   pooled over neurons and `gauss_samples` (neurons x nets) per seed; exchangeable neurons share the marginal.
   For a Gaussian scale mixture y | V ~ N(0, V) it is 3 Var(V) / E[V]^2 = O(1/n) (measured: about 8/n for
   ReLU, 1.5/n for Erf); its sampling sd is about sqrt(24 / samples) (0.005 at 10^6 samples), set below the
   differences between consecutive widths of the grid.
5. contrast: the same with s = 1 and s = 1/L (infinite width by the library; Monte Carlo on the grid).
   s = 1, ReLU: q_{l+1} = 1.5 q_l and c_{l+1} = (c_l + f(c_l)) / 1.5 with the arc-cosine map
   f(c) = (sin t + (pi - t) cos t) / (2 pi), cos t = c. With eps = 1 - c, t = sqrt(2 eps) (1 + O(eps)) and
   sin t - t cos t = t^3/3 + O(t^5), so f = 1/2 - eps/2 + (2 eps)^(3/2) / (6 pi) + O(eps^(5/2)) and
   eps_{l+1} = eps_l - a eps_l^(3/2) + O(eps_l^(5/2)), a = 2 sqrt(2) / (9 pi). Hence u = eps^(-1/2) obeys
   u_{l+1} = u_l + a/2 + (3 a^2 / 8) eps_l^(1/2) + O(eps_l): c_L -> 1 only algebraically, 1 - c_L ~ (a L / 2)^(-2),
   and the slope of (1 - c_L)^(-1/2) in L tends to a/2 = sqrt(2) / (9 pi) = 0.05002 with relative correction
   (3a/4) eps^(1/2) (at most 3.0% between L = 32 and 64 for any c0 in [-1, 1), measured; 0.8% between 128 and 256).
   s = 1, Erf: E[erf(u)^2] = (2/pi) arcsin(2q / (1 + 2q)) -> 1, so q_L grows only linearly (q_L = 54.7 q_0 at
   L = 64, 983 at L = 1024, q_0 = 1), and the correlation does NOT go to 1: with q_l ~ l,
   c_{l+1} - c_l = ((2/pi) arcsin c_l - c_l) / l (1 + o(1)), and (2/pi) arcsin c < c on (0, 1), so c_L decays to
   the fixed point 0, slowly: near 0 as L^-(1 - 2/pi) = L^-0.363 (c0 = 0.5: c_L = 0.236 at L = 64, 0.091 at 1024).
6. keras: real finite nets of the architecture library, `spec.keras_model` of `residual_spec` (+ a readout
   Dense, which `keras_model` requires; Y_L is read off the last residual Add layer), in ctx.dtype, at the
   (n, L) points `keras_points`, `keras_nets` nets drawn with `harness.nets.reinitialize`, against as many
   nets of `simulate_gram`: two-sample Kolmogorov-Smirnov test per synthetic pair of c_L and of the anchor's
   q_L. The library's first Dense has fan_in d and NTK parameterisation w_std / sqrt(fan_in) x W, W ~ N(0, 1),
   i.e. W_in ~ N(0, 1/d); each branch is Relu/Erf then Dense(w_std=1), so it is the same model. (Under
   TensorFlow the library's keras.layers.Rescaling casts s through float32: s is off by <= 6e-8 relative, far
   below what the test resolves.) Keras APIs only (runs under KERAS_BACKEND=tensorflow and jax); measured on 2
   busy CPU cores: 7-9 s at the smoke size (TensorFlow; 6 s with JAX), 0.014 / 0.032 / 0.13 s a net at
   (n, L) = (64, 4) / (64, 16) / (128, 64) (the per-layer cost of reinitialize dominates).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy import special

from harness import claims, registry, stats
from harness.theory import residual_flow as rf

ACTIVATIONS = ("relu", "erf")
# Branch scales s(L) by name; "inverse_sqrt_depth" is the paper's.
SCALES: dict[str, Callable[[int], float]] = {
    "inverse_sqrt_depth": lambda depth: depth ** -0.5,
    "one": lambda depth: 1.0,
    "inverse_depth": lambda depth: 1.0 / depth,
}
MAIN_SCALE = "inverse_sqrt_depth"
CONTRAST_SCALES = ("one", "inverse_depth")
INPUT_SETS = ("synthetic", "cifar10")
INPUT_CORRELATIONS = (0.0, 0.25, 0.5, 0.75, 0.9)
CIFAR_POOL = 4000          # official train images 0..3999 (the exact-pixel mirror holds these)
CIFAR_SEED = 0
# Claims' tolerances (theory or stated; see CLAIMS).
KERNEL_MATCH_RTOL = 1e-10        # library kernel vs residual_flow recursion, float64
WIDTH_FIRST_SLOPE = (-1.05, -0.95)   # theory -1 (Euler, O(1/L)); the O(1/L^2) term bends it by < 0.02 here
ERROR_COEFFICIENT_RTOL = 0.02    # L * error at L >= 64 vs its limit e_c: relative O(1/L) correction (0.6% at 64)
FLUCTUATION_SLOPE = (-0.6, -0.4)  # theory -1/2: the CLT fluctuation of c_{n,L}, uniform in L
UNIFORM_DEPTH_FACTOR = 1.25      # distance at the largest depth vs the smallest, per width (one-sided Welch)
CLAIM_ALPHA = 0.01
# ReLU, s = 1, infinite width: (1 - c_L)^(-1/2) grows linearly in L with slope a/2 = sqrt(2)/(9 pi) (docstring,
# part 5). The two-point slope between the two largest kernel depths (the smaller >= SCALE_ONE_MIN_DEPTH) is
# off by the first-order correction (3a/4) eps^(1/2) <= 3.0% at L = 32..64 for any c0 in [-1, 1) (1.5-2.7% for
# the smoke tier's pairs, 0.6-0.8% at 128..256); the tolerance doubles that for the O(eps) remainder, and a
# different collapse law (e.g. 1 - c ~ 1/L, or exponential) would be off by far more.
SCALE_ONE_COLLAPSE_SLOPE = math.sqrt(2.0) / (9.0 * math.pi)   # 0.05002
SCALE_ONE_SLOPE_RTOL = 0.06
SCALE_ONE_MIN_DEPTH = 32         # the second-largest kernel depth: where the correction above is <= 3%
CONTRAST_MIN_VAR_RATIO = 10.0    # s = 1: q_L / q_0 at the largest depth vs the s = L^(-1/2) limit (<= 1.65)
TRIVIAL_SLOPE = (-1.1, -0.9)     # s = 1/L: q_L / q_0 - 1 and |c_L - c_0| = O(1/L) at infinite width
MIN_DEPTHS_FOR_RATE = 64         # the largest kernel depth of every tier is at least this
# Keras nets vs the Gram simulator: every KS p-value above KERAS_FAMILY_ALPHA / (number of tests), Bonferroni,
# so a run where both samplers draw from the same distribution fails with probability <= 1%.
KERAS_FAMILY_ALPHA = 0.01
KERAS_MIN_NETS = 50              # per point and sampler: below this the KS test has little power


@dataclasses.dataclass(frozen=True)
class CommutativityConfig:
  seeds: tuple[int, ...]
  dtype: str = "float64"
  activations: tuple[str, ...] = ("relu",)
  input_correlations: tuple[float, ...] = INPUT_CORRELATIONS
  cifar_pairs: int = 0                    # pairs of CIFAR-10 training images (0: synthetic inputs only)
  kernel_depths: tuple[int, ...] = (4, 8, 16, 32, 64)   # infinite-width kernels (library)
  widths: tuple[int, ...] = (16, 32, 64, 128)           # Monte Carlo grid
  depths: tuple[int, ...] = (4, 16, 32, 64)
  nets_per_seed: int = 16
  contrast: bool = True                   # Monte Carlo grid also for s = 1 and s = 1/L
  gauss_widths: tuple[int, ...] = (16, 64, 256)
  gauss_depths: tuple[int, ...] = (4, 16, 64)
  gauss_samples: int = 1_000_000          # neurons x nets per seed and (L, n)
  keras_points: tuple[tuple[int, int], ...] = ((64, 4), (64, 16))   # (n, L) of the Keras vs Gram check
  keras_nets: int = 200                   # nets per point and sampler, split evenly over the seeds (rounded up)

  def __post_init__(self):
    unknown = set(self.activations) - set(ACTIVATIONS)
    if unknown:
      raise ValueError(f"unknown activations {sorted(unknown)}; choose from {ACTIVATIONS}")
    if max(self.kernel_depths) < MIN_DEPTHS_FOR_RATE:
      raise ValueError(f"kernel_depths must reach {MIN_DEPTHS_FOR_RATE} for the rate claim")
    if len(self.kernel_depths) < 3 or len(self.widths) < 3 or len(self.joint_sizes) < 3:
      raise ValueError("need at least 3 kernel depths, 3 widths and 3 joint sizes n = L (power-law fits)")
    if len(self.seeds) < 2:
      raise ValueError("need at least 2 seeds (claims and references test seed spread)")
    if sorted(self.kernel_depths)[-2] < SCALE_ONE_MIN_DEPTH:
      raise ValueError(f"the second-largest kernel depth must be >= {SCALE_ONE_MIN_DEPTH} (s = 1 collapse-rate claim)")
    if self.keras_points and self.keras_nets < KERAS_MIN_NETS:
      raise ValueError(f"keras_nets must be >= {KERAS_MIN_NETS} (KS tests), got {self.keras_nets}")
    if any(n < 1 or depth < 1 for n, depth in self.keras_points):
      raise ValueError(f"keras_points must be (width, depth) pairs >= 1, got {self.keras_points}")

  @property
  def keras_nets_per_seed(self) -> int:
    return -(-self.keras_nets // len(self.seeds))

  @property
  def joint_sizes(self) -> tuple[int, ...]:
    """n = L points of the grid (the joint path)."""
    return tuple(sorted(set(self.widths) & set(self.depths)))


@registry.tier("smoke", hardware="2 CPU cores", expected_runtime_s=60)
def smoke() -> CommutativityConfig:
  """Command: python -m harness run --experiment=commutativity --tier=smoke
  Hardware: 2 CPU cores. Expected runtime: 30 s measured (the blessed run; keras phase 7-9 s); budget 60 s.
  Expected result: every claim passes; ReLU only, synthetic inputs, widths 16-128, depths 4-64."""
  return CommutativityConfig(seeds=(0, 1, 2, 3))


@registry.tier("small", hardware="2 CPU cores", expected_runtime_s=600)
def small() -> CommutativityConfig:
  """Command: python -m harness run --experiment=commutativity --tier=small --mirrors=cifar10=/work/shared/data/cifar10-exact-subset
  Hardware: 2 CPU cores. Expected runtime: 535 s measured (the blessed run: monte_carlo 244 s, gaussianity 186 s,
  infinite_width 57 s, keras 48 s); budget 600 s.
  Expected result: every claim passes for ReLU and Erf, synthetic pairs and 4 CIFAR-10 pairs; widths 16-1024,
  depths 4-256."""
  return CommutativityConfig(
      seeds=tuple(range(8)), activations=ACTIVATIONS, cifar_pairs=4,
      kernel_depths=(4, 8, 16, 32, 64, 128, 256),
      widths=(16, 32, 64, 128, 256, 512, 1024), depths=(4, 8, 16, 32, 64, 128, 256),
      gauss_widths=(16, 64, 256), gauss_depths=(4, 16, 64), gauss_samples=2_000_000,
      keras_points=((64, 4), (64, 16), (128, 32)))


@registry.tier("paper", hardware="1 GPU host (16 CPU cores used by numpy)", expected_runtime_s=3600)
def paper() -> CommutativityConfig:
  """Command: python -m harness run --experiment=commutativity --tier=paper --mirrors=cifar10=FOLDER
  Hardware: 1 GPU host; the Monte Carlo is numpy on its CPU cores, the kernels use the accelerator.
  Expected runtime: about 1 hour, an ESTIMATE extrapolated from the small tier on 2 CPU cores (Monte Carlo cost
  proportional to seeds x nets x sum(n) x sum(L); not measured on a GPU host; the keras phase, 4 points x 400
  nets x 2 activations, about 5 minutes on CPU by the same extrapolation).
  Expected result: every claim passes, widths to 4096, depths to 1024, 16 seeds."""
  return CommutativityConfig(
      seeds=tuple(range(16)), activations=ACTIVATIONS, cifar_pairs=8,
      kernel_depths=(4, 8, 16, 32, 64, 128, 256, 512, 1024),
      widths=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096), depths=(4, 8, 16, 32, 64, 128, 256, 512, 1024),
      gauss_widths=(16, 64, 256, 1024), gauss_depths=(4, 16, 64, 256), gauss_samples=16_000_000,
      keras_points=((64, 4), (64, 16), (256, 64), (1024, 16)), keras_nets=400)


# ------------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Inputs:
  """Points x (P, d) with x.x/d = 1 and the pairs (i, j) whose correlation is tracked, by input set."""
  x: np.ndarray
  pairs: dict[str, list[tuple[int, int]]]
  points: dict[str, list[int]]

  @property
  def kernel(self) -> np.ndarray:
    """Input covariance x.x'/d (what the first Dense layer sees, harness.nets convention)."""
    return self.x @ self.x.T / self.x.shape[1]


def synthetic_points(correlations: Sequence[float], dim: int) -> np.ndarray:
  """An anchor e_0 and partners c e_0 + sqrt(1 - c^2) e_i, scaled to x.x/d = 1: corr(anchor, partner i) = c_i."""
  count = len(correlations) + 1
  if dim < count:
    raise ValueError(f"dimension {dim} < {count} points")
  x = np.zeros((count, dim))
  x[0, 0] = 1.0
  for i, c in enumerate(correlations, start=1):
    x[i, 0], x[i, i] = c, math.sqrt(1.0 - c * c)
  return x * math.sqrt(dim)


def standardize_images(images: np.ndarray) -> np.ndarray:
  """uint8 images -> flat float64 rows with mean 0 and x.x/d = 1 each."""
  x = images.reshape(len(images), -1).astype(np.float64) / 255.0
  x = x - x.mean(axis=1, keepdims=True)
  return x / np.sqrt(np.mean(x * x, axis=1, keepdims=True))


def make_inputs(config: CommutativityConfig, ctx) -> Inputs:
  correlations = config.input_correlations
  blocks, pairs, points = [], {}, {}
  dim = len(correlations) + 1
  cifar = None
  if config.cifar_pairs:
    split = ctx.load_dataset("cifar10", split="train", size=2 * config.cifar_pairs, seed=CIFAR_SEED, pool=CIFAR_POOL)
    cifar = standardize_images(split.images)
    dim = cifar.shape[1]
  blocks.append(synthetic_points(correlations, dim))
  points["synthetic"] = list(range(len(correlations) + 1))
  pairs["synthetic"] = [(0, i) for i in range(1, len(correlations) + 1)]
  if cifar is not None:
    start = len(correlations) + 1
    blocks.append(cifar)
    points["cifar10"] = list(range(start, start + len(cifar)))
    pairs["cifar10"] = [(start + 2 * i, start + 2 * i + 1) for i in range(config.cifar_pairs)]
  return Inputs(np.concatenate(blocks), pairs, points)


def pair_kernel(k: np.ndarray, pairs: Sequence[tuple[int, int]]) -> rf.PairKernel:
  i, j = np.array(pairs).T
  return rf.PairKernel.of(k[i, i], k[j, j], k[i, j])


# ------------------------------------------------------------------------------------------------------
# Infinite width: the architecture library
# ------------------------------------------------------------------------------------------------------
def residual_spec(activation: str, depth: int, branch_scale: float):
  """Y_0 = W_in x; L blocks x + s Dense(phi(x)) (harness.nets, NTK parameterisation, no biases)."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  phi = {"relu": nets.Relu, "erf": nets.Erf}[activation]()
  block = nets.residual(nets.serial(phi, nets.Dense(w_std=1.0, b_std=0.0)), branch_scale=branch_scale)
  return nets.serial(nets.Dense(w_std=1.0, b_std=0.0), nets.repeat(block, depth))


def infinite_width_kernel(activation: str, x: np.ndarray, depth: int, branch_scale: float, dtype: str) -> np.ndarray:
  """NNGP of Y_L (the last residual block's output) between the rows of x, from harness.nets.

  Op by op (`nets.eager`): compiling the kernel of L unrolled residual blocks takes 1, 4, 22, 209 s at
  L = 4, 16, 64, 256 on 2 CPU cores (TensorFlow; 95 s at 256 with JAX); eagerly a block costs about 25 ms here.
  """
  from harness import nets  # pylint: disable=import-outside-toplevel
  with nets.eager():
    return np.asarray(residual_spec(activation, depth, branch_scale).kernel(x, get="nngp", dtype=dtype),
                      dtype=np.float64)


# ------------------------------------------------------------------------------------------------------
# Finite width: Monte Carlo
# ------------------------------------------------------------------------------------------------------
def _phi(activation: str) -> Callable[[np.ndarray], np.ndarray]:
  return {"relu": lambda y: np.maximum(y, 0.0), "erf": special.erf}[activation]


def psd_factor(k: np.ndarray) -> np.ndarray:
  """A with A^T A = k for symmetric PSD k (batched on leading axes): Cholesky, eigh where it fails."""
  try:
    return np.swapaxes(np.linalg.cholesky(k), -1, -2)
  except np.linalg.LinAlgError:
    w, v = np.linalg.eigh(k)
    return np.swapaxes(v * np.sqrt(np.clip(w, 0.0, None))[..., None, :], -1, -2)


def simulate_gram(k0: np.ndarray, width: int, depth: int, branch_scale: float, activation: str, num_nets: int,
                  rng: np.random.Generator, dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
  """(Y_0, Y_L), each (num_nets, width, P), of independent nets on P inputs with input covariance k0.

  Exact in distribution (module docstring): Y_0 = Z_0 A_0, Y_l = Y_{l-1} + s Z_l A_l with A^T A the Gram
  matrix phi(Y_{l-1})^T phi(Y_{l-1}) / n and Z_l i.i.d. standard normal.
  """
  phi = _phi(activation)
  y0 = rng.standard_normal((num_nets, width, k0.shape[0]), dtype=dtype) @ psd_factor(k0).astype(dtype)
  y = y0
  for _ in range(depth):
    p = phi(y)
    gram = np.swapaxes(p, -1, -2) @ p / width
    y = y + branch_scale * (rng.standard_normal(y.shape, dtype=dtype) @ psd_factor(gram).astype(dtype))
  return y0, y


def simulate_weights(x: np.ndarray, width: int, depth: int, branch_scale: float, activation: str, num_nets: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """The same nets with explicit weight matrices W ~ N(0, 1/fan_in) (O(n^2) per block; for tests)."""
  phi = _phi(activation)
  d = x.shape[1]
  w_in = rng.standard_normal((num_nets, width, d)) / math.sqrt(d)
  y0 = w_in @ x.T
  y = y0
  for _ in range(depth):
    w = rng.standard_normal((num_nets, width, width)) / math.sqrt(width)
    y = y + branch_scale * (w @ phi(y))
  return y0, y


def second_moments(y: np.ndarray) -> np.ndarray:
  """(nets, P, P) empirical covariances Y^T Y / n."""
  return np.swapaxes(y, -1, -2) @ y / y.shape[-2]


def correlations(k: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
  """(nets, pairs) correlations from (nets, P, P) covariances."""
  i, j = np.array(pairs).T
  return k[:, i, j] / (np.sqrt(k[:, i, i]) * np.sqrt(k[:, j, j]))  # no q1 q2 product: it overflows at s = 1, large L


def excess_kurtosis(y: np.ndarray) -> float:
  """E[y^4] / E[y^2]^2 - 3 over all entries, with the mean known to be 0."""
  y2 = np.square(y, dtype=np.float64)
  return float(np.mean(y2 * y2) / np.mean(y2) ** 2 - 3.0)


def _rng(*keys: int) -> np.random.Generator:
  return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def _seed31(*keys: int) -> int:
  """A 31-bit integer seed (for harness.nets.reinitialize) from integer keys."""
  return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)


# ------------------------------------------------------------------------------------------------------
# Finite width: the library's Keras nets
# ------------------------------------------------------------------------------------------------------
class KerasResidualNet:
  """The finite net of `residual_spec` built by `spec.keras_model`, and its last residual block's output Y_L.

  `keras_model` requires a Dense readout, so the spec gets one (num_outputs=1, unused); Y_L is the output of
  the last `residual_*` Add layer, read through a second keras.Model sharing the layers. `sample` redraws the
  weights in place (`harness.nets.reinitialize`, as keras_model(seed=...) would draw them) instead of
  rebuilding the model.
  """

  def __init__(self, activation: str, width: int, depth: int, branch_scale: float, input_dim: int, dtype: str):
    import keras  # pylint: disable=import-outside-toplevel
    from harness import nets  # pylint: disable=import-outside-toplevel
    self.width, self.depth, self.dtype = width, depth, dtype
    spec = nets.serial(residual_spec(activation, depth, branch_scale), nets.Dense(w_std=1.0, b_std=0.0))
    self.model = spec.keras_model(width=width, input_shape=(input_dim,), num_outputs=1, dtype=dtype)
    blocks = [layer for layer in self.model.layers if layer.name.startswith("residual_")]
    if len(blocks) != depth:
      raise RuntimeError(f"expected {depth} residual Add layers, found {len(blocks)}")
    self.features = keras.Model(self.model.inputs[0], blocks[-1].output)
    if str(self.model.trainable_variables[0].dtype).split(".")[-1] != dtype:
      raise RuntimeError(f"weights are {self.model.trainable_variables[0].dtype}, not {dtype}")

  def sample(self, x: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """(len(seeds), width, P) Y_L of the rows of x, one net per seed (the layout of `simulate_gram`)."""
    from harness import nets  # pylint: disable=import-outside-toplevel
    x = np.asarray(x, dtype=self.dtype)
    out = []
    for seed in seeds:
      nets.reinitialize(self.model, seed)
      y = np.asarray(self.features.predict_on_batch(x))   # (P, width)
      out.append(y.T)
    return np.stack(out).astype(np.float64)


# ------------------------------------------------------------------------------------------------------
# Metric names
# ------------------------------------------------------------------------------------------------------
def _grid_name(what: str, activation: str, inputs: str, n: int, depth: int) -> str:
  return f"{what}/{activation}/{inputs}/n={n}/L={depth}"


def _contrast_name(what: str, activation: str, scale: str, n: int | None, depth: int) -> str:
  return f"{what}/{activation}/scale={scale}" + (f"/n={n}" if n is not None else "") + f"/L={depth}"


def _pair_corr_name(activation: str, scale: str, c0: float, depth: int) -> str:
  return f"infinite_width_corr/{activation}/scale={scale}/c0={c0:g}/L={depth}"


def _ks_name(activation: str, n: int, depth: int, what: str) -> str:
  """what: 'c0=0.5' (c_L of that synthetic pair) or 'q_anchor' (q_L of the anchor)."""
  return f"keras_vs_gram_ks_pvalue/{activation}/n={n}/L={depth}/{what}"


_KEY = re.compile(r"(\w+)=([-\w.]+)")


def parse_keys(name: str) -> dict[str, str]:
  """The key=value parts of a metric name, e.g. {'n': '16', 'L': '4'}."""
  return dict(_KEY.findall(name))


def select(names: Iterable[str], prefix: str) -> dict[str, str]:
  """Metric names under `prefix/` -> the rest of the name."""
  return {name: name[len(prefix) + 1:] for name in names if name.startswith(prefix + "/")}


# ------------------------------------------------------------------------------------------------------
# Run
# ------------------------------------------------------------------------------------------------------
def run_flow(config: CommutativityConfig, ctx, inputs: Inputs) -> dict[tuple[str, str], rf.PairKernel]:
  """The limits c(1), q(1) per activation and input set, and the Euler error coefficients."""
  limits = {}
  k0 = inputs.kernel
  for input_set, pairs in inputs.pairs.items():
    if input_set != "synthetic":  # the input correlations of the image pairs (the same for every activation)
      for i, c0 in enumerate(pair_kernel(k0, pairs).corr):
        ctx.metric(f"input_corr/{input_set}/pair={i}", float(c0))
  for act in config.activations:
    for input_set, pairs in inputs.pairs.items():
      start = pair_kernel(k0, pairs)
      limit = rf.solve_flow(act, start)
      limits[act, input_set] = limit
      coefficient = rf.euler_error_coefficient(act, start)
      ctx.metric(f"theory_corr_error_coefficient/{act}/{input_set}", float(np.mean(np.abs(coefficient.corr))))
      if input_set == "synthetic":
        for c0, c1 in zip(config.input_correlations, limit.corr):
          ctx.metric(f"limit_corr/{act}/c0={c0:g}", float(c1))
        ctx.metric(f"limit_var_ratio/{act}", float(limit.q1[0] / start.q1[0]))
      else:
        for i, c1 in enumerate(limit.corr):
          ctx.metric(f"limit_corr/{act}/{input_set}/pair={i}", float(c1))
  return limits


def run_infinite_width(config: CommutativityConfig, ctx, inputs: Inputs, limits) -> None:
  """Library kernels at finite depth, three branch scales; the rate of approach to the flow's limit."""
  k0 = inputs.kernel
  for act in config.activations:
    worst = 0.0
    for scale_name, scale in SCALES.items():
      for depth in config.kernel_depths:
        k = infinite_width_kernel(act, inputs.x, depth, scale(depth), ctx.dtype)
        for input_set, pairs in inputs.pairs.items():
          library = pair_kernel(k, pairs)
          recursion = rf.finite_depth_kernel(act, pair_kernel(k0, pairs), depth, scale(depth))
          for a, b in ((library.q1, recursion.q1), (library.q2, recursion.q2), (library.k12, recursion.k12)):
            worst = max(worst, float(np.max(np.abs(a - b) / np.abs(b).clip(1e-300))))
          if scale_name == MAIN_SCALE:
            error = float(np.mean(np.abs(library.corr - limits[act, input_set].corr)))
            ctx.metric(f"infinite_width_corr_error/{act}/{input_set}/L={depth}", error)
        # the three scales on the synthetic pairs (the contrast)
        syn, start = pair_kernel(k, inputs.pairs["synthetic"]), pair_kernel(k0, inputs.pairs["synthetic"])
        syn_corr = syn.corr
        ctx.metric(_contrast_name("infinite_width_var_ratio", act, scale_name, None, depth),
                   float(np.mean(syn.q1 / start.q1)))
        ctx.metric(_contrast_name("infinite_width_mean_corr", act, scale_name, None, depth), float(np.mean(syn_corr)))
        ctx.metric(_contrast_name("infinite_width_corr_change", act, scale_name, None, depth),
                   float(np.mean(np.abs(syn_corr - start.corr))))
        if scale_name == "one":  # per pair: the algebraic collapse c_L -> 1 (ReLU; module docstring, part 5)
          for c0, c in zip(config.input_correlations, syn_corr):
            ctx.metric(_pair_corr_name(act, scale_name, c0, depth), float(c))
    ctx.metric(f"max_rel_diff/infinite_width_kernel_library_vs_recursion/{act}", worst)
    depths = np.array(config.kernel_depths, dtype=np.float64)
    for input_set in inputs.pairs:
      errors = [ctx.metrics[f"infinite_width_corr_error/{act}/{input_set}/L={d}"].values[0]
                for d in config.kernel_depths]
      fit = stats.fit_power_law(depths, errors)
      ctx.metric(f"slope/infinite_width_corr_error_vs_L/{act}/{input_set}", fit.slope)
      ctx.metric(f"depth_times_infinite_width_corr_error/{act}/{input_set}/at_max_L", depths[-1] * errors[-1])
    for what in ("infinite_width_var_ratio", "infinite_width_corr_change"):
      values = [ctx.metrics[_contrast_name(what, act, "inverse_depth", None, d)].values[0] for d in config.kernel_depths]
      if what == "infinite_width_var_ratio":
        values = [v - 1.0 for v in values]
      ctx.metric(f"slope/{what}_vs_L/{act}/scale=inverse_depth", stats.fit_power_law(depths, values).slope)


def run_monte_carlo(config: CommutativityConfig, ctx, inputs: Inputs, limits) -> None:
  k0 = inputs.kernel
  scales = (MAIN_SCALE,) + (CONTRAST_SCALES if config.contrast else ())
  for a_index, act in enumerate(config.activations):
    for s_index, scale_name in enumerate(scales):
      for n in config.widths:
        for depth in config.depths:
          for seed in ctx.seeds:
            rng = _rng(seed, a_index, s_index, n, depth, 1)
            y0, y = simulate_gram(k0, n, depth, SCALES[scale_name](depth), act, config.nets_per_seed, rng, ctx.dtype)
            k, k_start = second_moments(y), second_moments(y0)
            if scale_name == MAIN_SCALE:
              for input_set, pairs in inputs.pairs.items():
                c = correlations(k, pairs)
                ctx.metric(_grid_name("mc_corr_abs_error", act, input_set, n, depth),
                           float(np.mean(np.abs(c - limits[act, input_set].corr))), seed=seed)
              points = inputs.points["synthetic"]
              q = k[:, points, points]
              ctx.metric(_grid_name("mc_var_rel_error", act, "synthetic", n, depth),
                         float(np.mean(np.abs(q / limits[act, "synthetic"].q1[0] - 1.0))), seed=seed)
            pairs = inputs.pairs["synthetic"]
            points = inputs.points["synthetic"]
            change = np.linalg.norm(y[..., points] - y0[..., points], axis=1) / np.linalg.norm(y0[..., points], axis=1)
            ctx.metric(_contrast_name("mc_rel_change", act, scale_name, n, depth), float(np.mean(change)), seed=seed)
            ctx.metric(_contrast_name("mc_mean_corr", act, scale_name, n, depth),
                       float(np.mean(correlations(k, pairs))), seed=seed)
            if scale_name == "inverse_depth":
              ctx.metric(_contrast_name("mc_corr_change", act, scale_name, n, depth),
                         float(np.mean(np.abs(correlations(k, pairs) - correlations(k_start, pairs)))), seed=seed)
    _record_path_slopes(config, ctx, act, tuple(inputs.pairs))


def _record_path_slopes(config: CommutativityConfig, ctx, act: str, input_sets: Sequence[str]) -> None:
  """Per seed: the power-law slope of the Monte Carlo distance vs n along the depth-first and joint paths."""
  paths = {"depth_first": [(n, max(config.depths)) for n in config.widths],
           "joint": [(n, n) for n in config.joint_sizes]}
  for input_set in input_sets:
    for path, points in paths.items():
      sizes = np.array([p[0] for p in points], dtype=np.float64)
      for seed in ctx.seeds:
        values = []
        for n, depth in points:
          metric = ctx.metrics[_grid_name("mc_corr_abs_error", act, input_set, n, depth)]
          values.append(metric.values[metric.seeds.index(seed)])
        ctx.metric(f"slope/mc_corr_abs_error_vs_n/{path}/{act}/{input_set}", stats.fit_power_law(sizes, values).slope,
                   seed=seed)


def run_keras(config: CommutativityConfig, ctx, inputs: Inputs, limits) -> None:
  """Keras nets vs the Gram simulator at `keras_points`: KS tests on c_L per pair and on q_L (module docstring)."""
  from scipy import stats as scipy_stats  # pylint: disable=import-outside-toplevel
  points, pairs = inputs.points["synthetic"], inputs.pairs["synthetic"]
  x = inputs.x[points]
  k0 = inputs.kernel[np.ix_(points, points)]
  local = [(points.index(i), points.index(j)) for i, j in pairs]
  per_seed = config.keras_nets_per_seed
  for a_index, act in enumerate(config.activations):
    limit = limits[act, "synthetic"].corr
    for n, depth in config.keras_points:
      s = SCALES[MAIN_SCALE](depth)
      net = KerasResidualNet(act, n, depth, s, x.shape[1], ctx.dtype)
      samples = {"keras": [], "gram": []}
      for seed in ctx.seeds:
        y_keras = net.sample(x, [_seed31(seed, a_index, n, depth, 3, j) for j in range(per_seed)])
        _, y_gram = simulate_gram(k0, n, depth, s, act, per_seed, _rng(seed, a_index, n, depth, 4), ctx.dtype)
        for name, y in (("keras", y_keras), ("gram", y_gram)):
          k = second_moments(y)
          samples[name].append((correlations(k, local), k[:, 0, 0]))
        c_keras = samples["keras"][-1][0]
        ctx.metric(_grid_name("keras_corr_abs_error", act, "synthetic", n, depth),
                   float(np.mean(np.abs(c_keras - limit))), seed=seed)
      (c_k, q_k), (c_g, q_g) = ((np.concatenate([c for c, _ in samples[name]]),
                                 np.concatenate([q for _, q in samples[name]])) for name in ("keras", "gram"))
      for p, c0 in enumerate(config.input_correlations):
        ctx.metric(_ks_name(act, n, depth, f"c0={c0:g}"), float(scipy_stats.ks_2samp(c_k[:, p], c_g[:, p]).pvalue))
      ctx.metric(_ks_name(act, n, depth, "q_anchor"), float(scipy_stats.ks_2samp(q_k, q_g).pvalue))


def run_gaussianity(config: CommutativityConfig, ctx) -> None:
  one_input = np.ones((1, 1))
  for a_index, act in enumerate(config.activations):
    for depth in config.gauss_depths:
      for n in config.gauss_widths:
        nets = -(-config.gauss_samples // n)
        for seed in ctx.seeds:
          rng = _rng(seed, a_index, n, depth, 2)
          _, y = simulate_gram(one_input, n, depth, SCALES[MAIN_SCALE](depth), act, nets, rng, ctx.dtype)
          ctx.metric(f"gauss_excess_kurtosis/{act}/L={depth}/n={n}", excess_kurtosis(y), seed=seed)


def _keras_backend() -> str:
  import keras  # pylint: disable=import-outside-toplevel
  return keras.backend.backend()


def run(config: CommutativityConfig, ctx) -> None:
  with ctx.phase("inputs"):
    inputs = make_inputs(config, ctx)
  with ctx.phase("flow"):
    limits = run_flow(config, ctx, inputs)
  with ctx.phase("infinite_width"):
    run_infinite_width(config, ctx, inputs, limits)
  with ctx.phase("monte_carlo"):
    run_monte_carlo(config, ctx, inputs, limits)
  with ctx.phase("keras"):
    run_keras(config, ctx, inputs, limits)
  with ctx.phase("gaussianity"):
    run_gaussianity(config, ctx)
  ctx.note("monte_carlo_simulator", "Gram recursion (exact in distribution), numpy float64; see module docstring")
  ctx.note("kernel_evaluation", "harness.nets spec.kernel, eager (no XLA compilation)")
  ctx.note("keras_nets", f"harness.nets spec.keras_model, {ctx.dtype}, Keras backend {_keras_backend()}, "
                         f"{config.keras_nets_per_seed * len(ctx.seeds)} nets per point")


# ------------------------------------------------------------------------------------------------------
# Claims
# ------------------------------------------------------------------------------------------------------
def _means(metrics: Mapping[str, Any], prefix: str, key: str) -> list[tuple[int, Any]]:
  """[(int(key value), metric)] for the metrics directly under prefix, sorted."""
  out = []
  for name, rest in select(metrics, prefix).items():
    if "/" not in rest and rest.startswith(key + "="):
      out.append((int(rest.split("=")[1]), metrics[name]))
  return sorted(out, key=lambda item: item[0])


def _present(metrics: Mapping[str, Any], prefix: str) -> list[str]:
  """Distinct next path components under prefix/ (activations, input sets...)."""
  return sorted({rest.split("/")[0] for rest in select(metrics, prefix).values()})


def _all(results: list[tuple[bool, str]]) -> tuple[bool, str]:
  if not results:
    return False, "no metrics to check"
  failed = [text for ok, text in results if not ok]
  return not failed, "; ".join(failed) if failed else "; ".join(text for _, text in results[:4]) + (
      f" (+{len(results) - 4} more)" if len(results) > 4 else "")


def _check_kernel_matches_recursion(metrics):
  results = []
  for act in _present(metrics, "max_rel_diff/infinite_width_kernel_library_vs_recursion"):
    value = metrics[f"max_rel_diff/infinite_width_kernel_library_vs_recursion/{act}"].mean
    results.append((value <= KERNEL_MATCH_RTOL, f"{act}: {value:.2g}"))
  return _all(results)


def _check_width_first(metrics):
  """Infinite-width error decreasing in L, slope ~ -1, L * error -> e_c."""
  results = []
  for act in _present(metrics, "infinite_width_corr_error"):
    for input_set in _present(metrics, f"infinite_width_corr_error/{act}"):
      series = _means(metrics, f"infinite_width_corr_error/{act}/{input_set}", "L")
      means = [m.mean for _, m in series]
      decreasing = all(b < a for a, b in zip(means, means[1:]))
      slope = metrics[f"slope/infinite_width_corr_error_vs_L/{act}/{input_set}"].mean
      scaled = metrics[f"depth_times_infinite_width_corr_error/{act}/{input_set}/at_max_L"].mean
      theory = metrics[f"theory_corr_error_coefficient/{act}/{input_set}"].mean
      ok = (decreasing and WIDTH_FIRST_SLOPE[0] <= slope <= WIDTH_FIRST_SLOPE[1]
            and abs(scaled - theory) <= ERROR_COEFFICIENT_RTOL * theory)
      results.append((ok, f"{act}/{input_set}: slope {slope:.3f}, L*err {scaled:.4g} vs e_c {theory:.4g}"
                          f"{'' if decreasing else ', not decreasing'}"))
  return _all(results)


def _welch_decreasing(series) -> list[tuple[bool, str]]:
  """Each consecutive step of a [(size, metric)] series is a significant decrease (one-sided Welch)."""
  out = []
  for (size_a, a), (size_b, b) in zip(series, series[1:]):
    test = stats.welch_t_test(a.values, b.values, alternative="greater")
    out.append((test.p_value < CLAIM_ALPHA, f"{size_a}->{size_b}: {a.mean:.4g}->{b.mean:.4g} p={test.p_value:.2g}"))
  return out


def _path_series(metrics, path: str, act: str, input_set: str):
  grid = {}
  for name, rest in select(metrics, f"mc_corr_abs_error/{act}/{input_set}").items():
    keys = parse_keys(rest)
    grid[int(keys["n"]), int(keys["L"])] = metrics[name]
  if not grid:
    return []
  if path == "depth_first":
    depth = max(d for _, d in grid)
    return sorted((n, m) for (n, d), m in grid.items() if d == depth)
  return sorted((n, m) for (n, d), m in grid.items() if n == d)


def _check_mc_path(path: str):
  def check(metrics):
    results = []
    for act in _present(metrics, "mc_corr_abs_error"):
      for input_set in _present(metrics, f"mc_corr_abs_error/{act}"):
        series = _path_series(metrics, path, act, input_set)
        steps = _welch_decreasing(series)
        slope = metrics[f"slope/mc_corr_abs_error_vs_n/{path}/{act}/{input_set}"].mean
        ok = all(s for s, _ in steps) and FLUCTUATION_SLOPE[0] <= slope <= FLUCTUATION_SLOPE[1]
        last_n, last = series[-1]
        results.append((ok, f"{act}/{input_set}: slope {slope:.3f}, distance {last.mean:.4g} at n={last_n}, "
                            f"sqrt(n)*distance {math.sqrt(last_n) * last.mean:.3f}"
                            + "".join(f"; {t}" for s, t in steps if not s)))
    return _all(results)
  return check


def _check_uniform_in_depth(metrics):
  """At every width: distance at the largest depth not significantly above UNIFORM_DEPTH_FACTOR x the smallest."""
  results = []
  for act in _present(metrics, "mc_corr_abs_error"):
    for input_set in _present(metrics, f"mc_corr_abs_error/{act}"):
      grid = {}
      for name, rest in select(metrics, f"mc_corr_abs_error/{act}/{input_set}").items():
        keys = parse_keys(rest)
        grid[int(keys["n"]), int(keys["L"])] = metrics[name]
      depths = sorted({d for _, d in grid})
      worst = 0.0
      for n in sorted({n for n, _ in grid}):
        deep, shallow = grid[n, depths[-1]], grid[n, depths[0]]
        test = stats.welch_t_test(deep.values, [UNIFORM_DEPTH_FACTOR * v for v in shallow.values],
                                  alternative="greater")
        worst = max(worst, deep.mean / shallow.mean)
        if test.p_value < CLAIM_ALPHA:
          results.append((False, f"{act}/{input_set} n={n}: {shallow.mean:.4g} at L={depths[0]} -> {deep.mean:.4g} "
                                 f"at L={depths[-1]} (p={test.p_value:.2g})"))
      results.append((True, f"{act}/{input_set}: largest ratio L={depths[-1]} / L={depths[0]} {worst:.3f}"))
  return _all(results)


def _check_gaussianity(metrics):
  results = []
  for act in _present(metrics, "gauss_excess_kurtosis"):
    for depth_key in _present(metrics, f"gauss_excess_kurtosis/{act}"):
      series = _means(metrics, f"gauss_excess_kurtosis/{act}/{depth_key}", "n")
      steps = _welch_decreasing(series)
      results.append((all(s for s, _ in steps), f"{act} {depth_key}: " + ", ".join(t for _, t in steps)))
  return _all(results)


def _relu_scale_one_collapse(metrics) -> tuple[bool, str]:
  """ReLU, s = 1: 1 - c_L strictly decreasing in L per synthetic pair, and the slope of (1 - c_L)^(-1/2)
  between the two largest kernel depths within SCALE_ONE_SLOPE_RTOL of sqrt(2) / (9 pi) (docstring, part 5)."""
  prefix = "infinite_width_corr/relu/scale=one"
  by_pair: dict[float, list[tuple[int, float]]] = {}
  for name, rest in select(metrics, prefix).items():
    keys = parse_keys(rest)
    by_pair.setdefault(float(keys["c0"]), []).append((int(keys["L"]), metrics[name].mean))
  if not by_pair:
    return False, f"no {prefix}/c0=*/L=* metrics"
  ok, slopes, failed = True, [], []
  for c0, series in sorted(by_pair.items()):
    series.sort()
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


def _check_scale_one(metrics):
  results = []
  for act in _present(metrics, "infinite_width_var_ratio"):
    series = _means(metrics, f"infinite_width_var_ratio/{act}/scale=one", "L")
    if not series:
      results.append((False, f"{act}: no infinite_width_var_ratio/{act}/scale=one metrics"))
      continue
    depth, ratio = series[-1][0], series[-1][1].mean
    limit = metrics[f"limit_var_ratio/{act}"].mean
    ok = ratio >= CONTRAST_MIN_VAR_RATIO * limit
    text = f"{act}: q_L/q_0 = {ratio:.4g} at L={depth} (s = L^-1/2 limit {limit:.4g})"
    if act == "relu":
      exact = all(abs(m.mean / 1.5 ** d - 1) <= KERNEL_MATCH_RTOL for d, m in series)
      collapse, collapse_text = _relu_scale_one_collapse(metrics)
      ok = ok and exact and collapse
      text += f", = 1.5^L {'at every L' if exact else 'NOT at every L'}; {collapse_text}"
    results.append((ok, text))
  return _all(results)


def _check_keras_vs_gram(metrics):
  """Every KS p-value above KERAS_FAMILY_ALPHA / (number of tests) (Bonferroni)."""
  names = sorted(select(metrics, "keras_vs_gram_ks_pvalue"))
  if not names:
    return False, "no keras_vs_gram_ks_pvalue metrics"
  threshold = KERAS_FAMILY_ALPHA / len(names)
  low = [(metrics[name].mean, name) for name in names if not metrics[name].mean > threshold]
  smallest, where = min((metrics[name].mean, name) for name in names)
  text = f"{len(names)} KS tests, threshold {threshold:.3g}; smallest p {smallest:.3g} ({where})"
  return not low, text + "".join(f"; {name}: p={p:.3g}" for p, name in low)


def _check_inverse_depth(metrics):
  results = []
  for act in _present(metrics, "infinite_width_var_ratio"):
    slopes = [metrics[f"slope/{what}_vs_L/{act}/scale=inverse_depth"].mean
              for what in ("infinite_width_var_ratio", "infinite_width_corr_change")]
    ok = all(TRIVIAL_SLOPE[0] <= s <= TRIVIAL_SLOPE[1] for s in slopes)
    text = f"{act}: slopes of q_L/q_0 - 1 and |c_L - c_0| vs L {slopes[0]:.3f}, {slopes[1]:.3f}"
    # Monte Carlo: |Y_L - Y_0| / |Y_0| falls with L at the largest width (-> 0: the identity map)
    grid = {}
    for name, rest in select(metrics, f"mc_rel_change/{act}/scale=inverse_depth").items():
      keys = parse_keys(rest)
      grid[int(keys["n"]), int(keys["L"])] = metrics[name]
    if grid:
      n = max(n for n, _ in grid)
      series = sorted((d, m) for (w, d), m in grid.items() if w == n)
      steps = _welch_decreasing(series)
      ok = ok and all(s for s, _ in steps)
      text += f"; MC |Y_L - Y_0|/|Y_0| at n={n}: " + " -> ".join(f"{m.mean:.3g}" for _, m in series)
    results.append((ok, text))
  return _all(results)


CLAIMS = (
    claims.Claim("flow_relu_variance_closed_form",
                 "ReLU: the flow's variance limit is q(1) = e^(1/2) q(0) (dq/dt = q/2)",
                 claims.Close("limit_var_ratio/relu", math.exp(0.5), atol=1e-10)),
    claims.Claim("library_kernel_is_the_residual_recursion",
                 "the library's infinite-width kernel of the finite-depth net equals K_l = K_(l-1) + s^2 E[phi phi]",
                 claims.Predicate(f"max relative difference <= {KERNEL_MATCH_RTOL:g} for every activation, scale, L",
                                  _check_kernel_matches_recursion)),
    claims.Claim("width_first_path_converges_at_rate_1_over_L",
                 "width first: the infinite-width kernel at depth L approaches the flow's limit as e_c / L "
                 "(Euler discretisation of the flow that characterises the limit, Hayou & Yang 2023)",
                 claims.Predicate(f"error strictly decreasing in L, power-law slope in {WIDTH_FIRST_SLOPE}, "
                                  f"L*error at the largest L within {ERROR_COEFFICIENT_RTOL:g} (rel) of e_c",
                                  _check_width_first)),
    claims.Claim("depth_first_path_converges",
                 "depth first (L = largest depth, n growing): the distance to the limit falls to 0 like n^(-1/2)",
                 claims.Predicate(f"each step in n a decrease (one-sided Welch, alpha {CLAIM_ALPHA:g}); slope vs n in "
                                  f"{FLUCTUATION_SLOPE}", _check_mc_path("depth_first"))),
    claims.Claim("joint_path_converges",
                 "jointly (n = L growing): the distance to the limit falls to 0 like n^(-1/2)",
                 claims.Predicate(f"each step a decrease (one-sided Welch, alpha {CLAIM_ALPHA:g}); slope vs n in "
                                  f"{FLUCTUATION_SLOPE}", _check_mc_path("joint"))),
    claims.Claim("finite_width_error_uniform_in_depth",
                 "the finite-width distance does not grow with depth (the limits commute, Hayou & Yang 2023)",
                 claims.Predicate(f"at every n, distance at the largest L not above {UNIFORM_DEPTH_FACTOR:g} x that at "
                                  f"the smallest L (one-sided Welch, alpha {CLAIM_ALPHA:g})",
                                  _check_uniform_in_depth)),
    claims.Claim("gaussianity_improves_with_width",
                 "pre-activations become Gaussian as n grows, at every depth (excess kurtosis = O(1/n))",
                 claims.Predicate(f"excess kurtosis decreases at each step in n, every L (one-sided Welch, alpha "
                                  f"{CLAIM_ALPHA:g})", _check_gaussianity)),
    claims.Claim("branch_scale_one_degenerates",
                 "without 1/sqrt(L) (s = 1, infinite width): the variance explodes with depth; ReLU: q_L = 1.5^L q_0 "
                 "and the correlation collapses to 1 algebraically, eps = 1 - c obeying eps_(l+1) = eps_l - "
                 "(2 sqrt 2 / (9 pi)) eps_l^(3/2) + O(eps^(5/2)) (arc-cosine map near c = 1), so (1 - c_L)^(-1/2) "
                 "grows like L sqrt(2)/(9 pi). Erf: variance only (q_L grows linearly, and c_L decays to 0 rather "
                 "than 1, as (2/pi) arcsin c < c on (0, 1); module docstring, part 5)",
                 claims.Predicate(f"q_L/q_0 >= {CONTRAST_MIN_VAR_RATIO:g} x the flow limit at the largest L; ReLU "
                                  f"exactly 1.5^L at every L (rel {KERNEL_MATCH_RTOL:g}), 1 - c_L strictly decreasing "
                                  "in L for every synthetic pair, and the slope of (1 - c_L)^(-1/2) between the two "
                                  f"largest L within {SCALE_ONE_SLOPE_RTOL:g} (rel) of sqrt(2)/(9 pi) = "
                                  f"{SCALE_ONE_COLLAPSE_SLOPE:.5f}", _check_scale_one)),
    claims.Claim("branch_scale_inverse_depth_is_trivial",
                 "with 1/L branches the net tends to the identity map: q_L/q_0 - 1 and |c_L - c_0| = O(1/L)",
                 claims.Predicate(f"power-law slopes in {TRIVIAL_SLOPE}; Monte Carlo |Y_L - Y_0|/|Y_0| decreasing in L "
                                  "at the largest width (one-sided Welch)", _check_inverse_depth)),
    claims.Claim("keras_nets_match_gram_simulator",
                 "finite Keras nets of the architecture library (spec.keras_model) draw c_L and q_L from the same "
                 "distribution as the Gram-recursion simulator of the Monte Carlo grid (Li, Nica & Roy 2022)",
                 claims.Predicate(f"every two-sample KS p-value (c_L per synthetic pair, q_L of the anchor, per "
                                  f"(n, L) point) > {KERAS_FAMILY_ALPHA:g} / (number of tests) (Bonferroni)",
                                  _check_keras_vs_gram)),
)


# ------------------------------------------------------------------------------------------------------
# References and figures
# ------------------------------------------------------------------------------------------------------
_WELCH = {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"}
REFERENCE_RULES = {
    # float64 ODE / recursion / library numbers: deterministic up to libm and BLAS rounding across machines.
    "limit_*": {"kind": "relative", "rtol": 1e-9},
    "theory_*": {"kind": "relative", "rtol": 1e-6},
    "input_corr/*": {"kind": "absolute", "atol": 1e-12},
    "infinite_width_corr_error/*": {"kind": "relative", "rtol": 1e-6},
    "slope/infinite_width_*": {"kind": "absolute", "atol": 1e-6},
    "depth_times_infinite_width_*": {"kind": "relative", "rtol": 1e-6},
    "infinite_width_var_ratio/*/L=*": {"kind": "relative", "rtol": 1e-9},
    "infinite_width_corr/*": {"kind": "absolute", "atol": 1e-12},
    # Monte Carlo: per-seed values; Welch's t against the blessed seeds.
    "mc_corr_abs_error/*/synthetic/*": _WELCH,
    "slope/mc_*": _WELCH,
    "gauss_excess_kurtosis/*": _WELCH,
    "keras_corr_abs_error/*": _WELCH,
    # keras_vs_gram_ks_pvalue/*: no rule; uniform under the claim, and Keras draws differ between backends.
}


def _metric_means(record: Mapping[str, Any]) -> dict[str, float]:
  return {name: float(m["mean"]) for name, m in record["metrics"].items() if not isinstance(m["mean"], str)}


def _grid_of(means: Mapping[str, float], prefix: str) -> dict[tuple[int, int], float]:
  grid = {}
  for name, rest in select(means, prefix).items():
    keys = parse_keys(rest)
    if "n" in keys and "L" in keys and rest.count("/") == 1:
      grid[int(keys["n"]), int(keys["L"])] = means[name]
  return grid


def figures(record: Mapping[str, Any]) -> dict[str, Any]:
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from matplotlib import colors  # pylint: disable=import-outside-toplevel
  means = _metric_means(record)
  out = {}
  activations = sorted({name.split("/")[1] for name in select(means, "mc_corr_abs_error")})

  # 1. heat map of the distance over (n, L)
  if activations:
    fig, axes = plt.subplots(1, len(activations), figsize=(5 * len(activations), 4), squeeze=False)
    for ax, act in zip(axes[0], activations):
      grid = _grid_of(means, f"mc_corr_abs_error/{act}/synthetic")
      widths, depths = sorted({n for n, _ in grid}), sorted({d for _, d in grid})
      z = np.array([[grid.get((n, d), np.nan) for d in depths] for n in widths])
      image = ax.imshow(z, origin="lower", cmap="viridis", norm=colors.LogNorm(), aspect="auto")
      ax.set_xticks(range(len(depths)), depths)
      ax.set_yticks(range(len(widths)), widths)
      ax.set(xlabel="depth L", ylabel="width n", title=f"{act}: mean |c_(n,L) - c(1)| (synthetic pairs)")
      fig.colorbar(image, ax=ax)
    fig.tight_layout()
    out["distance_heatmap"] = fig

  # 2. the three paths
  fig, axes = plt.subplots(1, max(1, len(activations)), figsize=(5 * max(1, len(activations)), 4), squeeze=False)
  for ax, act in zip(axes[0], activations):
    width_first = sorted((int(parse_keys(r)["L"]), means[n])
                         for n, r in select(means, f"infinite_width_corr_error/{act}/synthetic").items())
    if width_first:
      x, y = zip(*width_first)
      ax.plot(x, y, "o-", label="width first (n = inf), vs L")
      ax.plot(x, [y[-1] * x[-1] / v for v in x], "k:", lw=0.8, label="slope -1")
    grid = _grid_of(means, f"mc_corr_abs_error/{act}/synthetic")
    if grid:
      deepest = max(d for _, d in grid)
      depth_first = sorted((n, v) for (n, d), v in grid.items() if d == deepest)
      joint = sorted((n, v) for (n, d), v in grid.items() if n == d)
      for series, label in ((depth_first, f"depth first (L = {deepest}), vs n"), (joint, "joint n = L, vs n")):
        if series:
          x, y = zip(*series)
          ax.plot(x, y, "s-" if "depth" in label else "^-", label=label)
      x, y = zip(*depth_first)
      ax.plot(x, [y[0] * (v / x[0]) ** -0.5 for v in x], "k--", lw=0.8, label="slope -1/2")
    ax.set(xscale="log", yscale="log", xlabel="size (L or n)", ylabel="mean |c - c(1)|", title=f"{act}: three paths")
    ax.legend(fontsize=7)
  fig.tight_layout()
  out["paths_to_the_limit"] = fig

  # 3. Gaussianity vs n
  gauss_acts = sorted({name.split("/")[1] for name in select(means, "gauss_excess_kurtosis")})
  if gauss_acts:
    fig, axes = plt.subplots(1, len(gauss_acts), figsize=(5 * len(gauss_acts), 4), squeeze=False)
    for ax, act in zip(axes[0], gauss_acts):
      by_depth: dict[int, list[tuple[int, float, float]]] = {}
      for name, rest in select(means, f"gauss_excess_kurtosis/{act}").items():
        keys = parse_keys(rest)
        blob = record["metrics"][name]
        se = float(blob["std"]) / math.sqrt(max(int(blob["n"]), 1))
        by_depth.setdefault(int(keys["L"]), []).append((int(keys["n"]), means[name], se))
      for depth, points in sorted(by_depth.items()):
        points.sort()
        ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                    capsize=3, label=f"L = {depth}")
      ax.set(xscale="log", yscale="symlog", xlabel="width n", ylabel="excess kurtosis of Y_L (one neuron)",
             title=f"{act}: Gaussianity vs width (± s.e. over seeds)")
      ax.axhline(0, color="k", lw=0.5)
      ax.legend(fontsize=7)
    fig.tight_layout()
    out["gaussianity_vs_width"] = fig

  # 4. branch-scale contrast at infinite width
  contrast_acts = sorted({name.split("/")[1] for name in select(means, "infinite_width_var_ratio")})
  if contrast_acts:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for act in contrast_acts:
      for scale, style in zip(SCALES, ("-", "--", ":")):
        for ax, what in zip(axes, ("infinite_width_var_ratio", "infinite_width_mean_corr")):
          series = sorted((int(parse_keys(r)["L"]), means[n])
                          for n, r in select(means, f"{what}/{act}/scale={scale}").items())
          if series:
            x, y = zip(*series)
            ax.plot(x, y, style, marker=".", label=f"{act}, s = {scale}")
    axes[0].set(xscale="log", yscale="log", xlabel="depth L", ylabel="q_L / q_0", title="variance (n = inf)")
    axes[1].set(xscale="log", xlabel="depth L", ylabel="mean c_L over the synthetic pairs", title="correlation (n = inf)")
    for ax in axes:
      ax.legend(fontsize=6)
    fig.tight_layout()
    out["branch_scale_contrast"] = fig
  return out


EXPERIMENT = registry.Experiment(
    name="commutativity",
    description="residual nets with 1/sqrt(L) branches: width and depth limits of the kernel commute",
    papers=(registry.Paper("2302.00453", "Hayou & Yang 2023, Width and Depth Limits Commute in Residual Networks"),
            registry.Paper("2310.01683", "Hayou 2023, Commutative Width and Depth Scaling in Deep Neural Networks")),
    claims=CLAIMS,
    tiers=(smoke, small, paper),
    run=run,
    reference_rules=REFERENCE_RULES,
    figures=figures,
)
