"""The run of `commutativity`, one function per phase (the parts of the package docstring)."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from harness import residual_gram as gram
from harness import seeding, stats
from harness.theory import residual_flow as rf

from benchmarks.commutativity import families as F
from benchmarks.commutativity.config import CommutativityConfig
from benchmarks.commutativity.inputs import Inputs, make_inputs, pair_kernel
from benchmarks.commutativity.nets import KerasResidualNet, infinite_width_kernels

# Branch scales s(L) by name (families.SCALES); "inverse_sqrt_depth" is the paper's.
BRANCH_SCALES: dict[str, Callable[[int], float]] = {
    "inverse_sqrt_depth": lambda depth: depth ** -0.5,
    "one": lambda depth: 1.0,
    "inverse_depth": lambda depth: 1.0 / depth,
}
MAIN_SCALE = "inverse_sqrt_depth"
CONTRAST_SCALES = ("one", "inverse_depth")
# Random streams: the last key of every generator (with the seed and the grid point's indices before it).
STREAM_MONTE_CARLO, STREAM_GAUSSIANITY, STREAM_KERAS_NETS, STREAM_KERAS_GRAM = 1, 2, 3, 4


def run_flow(config: CommutativityConfig, ctx, inputs: Inputs) -> dict[tuple[str, str], rf.PairKernel]:
  """The limits c(1), q(1) per activation and input set, and the Euler error coefficients."""
  limits = {}
  k0 = inputs.kernel
  for input_set, pairs in inputs.pairs.items():
    if input_set != "synthetic":  # the input correlations of the image pairs (the same for every activation)
      for i, c0 in enumerate(pair_kernel(k0, pairs).corr):
        ctx.record(F.INPUT_CORR, float(c0), inputs=input_set, pair=i)
  for act in config.activations:
    for input_set, pairs in inputs.pairs.items():
      start = pair_kernel(k0, pairs)
      limit = rf.solve_flow(act, start)
      limits[act, input_set] = limit
      coefficient = rf.euler_error_coefficient(act, start)
      ctx.record(F.ERROR_COEFFICIENT, float(np.mean(np.abs(coefficient.corr))), act=act, inputs=input_set)
      if input_set == "synthetic":
        for c0, c1 in zip(config.input_correlations, limit.corr):
          ctx.record(F.LIMIT_CORR, float(c1), act=act, c0=c0)
        ctx.record(F.LIMIT_VAR_RATIO, float(limit.q1[0] / start.q1[0]), act=act)
      else:
        for i, c1 in enumerate(limit.corr):
          ctx.record(F.LIMIT_CORR_IMAGES, float(c1), act=act, inputs=input_set, pair=i)
  return limits


def run_infinite_width(config: CommutativityConfig, ctx, inputs: Inputs, limits) -> None:
  """Library kernels at finite depth, three branch scales; the rate of approach to the flow's limit."""
  k0 = inputs.kernel
  for act in config.activations:
    worst = 0.0
    for scale_name, scale in BRANCH_SCALES.items():
      kernels = infinite_width_kernels(act, inputs.x, config.kernel_depths, scale, ctx.dtype)
      for depth in config.kernel_depths:
        k = kernels[depth]
        for input_set, pairs in inputs.pairs.items():
          library = pair_kernel(k, pairs)
          recursion = rf.finite_depth_kernel(act, pair_kernel(k0, pairs), depth, scale(depth))
          # each entry relative to its scale: q1, q2 themselves, k12 sqrt(q1 q2) (k12 may cancel to 0: erf, c0 = 0)
          k12_scale = np.sqrt(recursion.q1 * recursion.q2)
          for a, b, size in ((library.q1, recursion.q1, recursion.q1), (library.q2, recursion.q2, recursion.q2),
                             (library.k12, recursion.k12, k12_scale)):
            worst = max(worst, float(np.max(np.abs(a - b) / np.abs(size).clip(1e-300))))
          if scale_name == MAIN_SCALE:
            error = float(np.mean(np.abs(library.corr - limits[act, input_set].corr)))
            ctx.record(F.IW_CORR_ERROR, error, act=act, inputs=input_set, L=depth)
        # the three scales on the synthetic pairs (the contrast)
        syn, start = pair_kernel(k, inputs.pairs["synthetic"]), pair_kernel(k0, inputs.pairs["synthetic"])
        syn_corr = syn.corr
        labels = dict(act=act, scale=scale_name, L=depth)
        ctx.record(F.IW_VAR_RATIO, float(np.mean(syn.q1 / start.q1)), **labels)
        ctx.record(F.IW_MEAN_CORR, float(np.mean(syn_corr)), **labels)
        ctx.record(F.IW_CORR_CHANGE, float(np.mean(np.abs(syn_corr - start.corr))), **labels)
        if scale_name == "one":  # per pair: the algebraic collapse c_L -> 1 (ReLU; package docstring, part 5)
          for c0, c in zip(config.input_correlations, syn_corr):
            ctx.record(F.IW_PAIR_CORR, float(c), c0=c0, **labels)
    ctx.record(F.KERNEL_VS_RECURSION, worst, act=act)
    view = ctx.view(F.IW_CORR_ERROR, F.IW_VAR_RATIO, F.IW_CORR_CHANGE)
    for input_set in inputs.pairs:
      depths, errors = view.of(F.IW_CORR_ERROR).select(act=act, inputs=input_set).means("L")
      ctx.record(F.IW_SLOPE, stats.fit_power_law(depths, errors).slope, act=act, inputs=input_set)
      ctx.record(F.IW_SCALED_ERROR, depths[-1] * errors[-1], act=act, inputs=input_set)
    for what, family in (("infinite_width_var_ratio", F.IW_VAR_RATIO), ("infinite_width_corr_change", F.IW_CORR_CHANGE)):
      depths, values = view.of(family).select(act=act, scale="inverse_depth").means("L")
      if what == "infinite_width_var_ratio":
        values = [v - 1.0 for v in values]
      ctx.record(F.TRIVIAL_SLOPE, stats.fit_power_law(depths, values).slope, what=what, act=act)



def run_monte_carlo(config: CommutativityConfig, ctx, inputs: Inputs, limits) -> None:
  k0 = inputs.kernel
  scales = (MAIN_SCALE,) + (CONTRAST_SCALES if config.contrast else ())
  counter = ctx.counter(len(config.activations) * len(scales) * len(config.widths) * len(config.depths))
  for a_index, act in enumerate(config.activations):
    for s_index, scale_name in enumerate(scales):
      for n in config.widths:
        for depth in config.depths:
          rngs = [seeding.rng(seed, a_index, s_index, n, depth, STREAM_MONTE_CARLO) for seed in ctx.seeds]
          simulated = gram.simulate_gram_streams(k0, n, depth, BRANCH_SCALES[scale_name](depth), act,
                                                 config.nets_per_seed, rngs, ctx.dtype)
          for seed, (y0, y) in zip(ctx.seeds, simulated):
            k, k_start = gram.second_moments(y), gram.second_moments(y0)
            if scale_name == MAIN_SCALE:
              for input_set, pairs in inputs.pairs.items():
                c = gram.correlations(k, pairs)
                ctx.record(F.MC_CORR_ERROR, float(np.mean(np.abs(c - limits[act, input_set].corr))), seed=seed,
                           act=act, inputs=input_set, n=n, L=depth)
              points = inputs.points["synthetic"]
              q = k[:, points, points]
              ctx.record(F.MC_VAR_ERROR, float(np.mean(np.abs(q / limits[act, "synthetic"].q1[0] - 1.0))), seed=seed,
                         act=act, inputs="synthetic", n=n, L=depth)
            pairs = inputs.pairs["synthetic"]
            points = inputs.points["synthetic"]
            labels = dict(act=act, scale=scale_name, n=n, L=depth)
            change = np.linalg.norm(y[..., points] - y0[..., points], axis=1) / np.linalg.norm(y0[..., points], axis=1)
            ctx.record(F.MC_REL_CHANGE, float(np.mean(change)), seed=seed, **labels)
            ctx.record(F.MC_MEAN_CORR, float(np.mean(gram.correlations(k, pairs))), seed=seed, **labels)
            if scale_name == "inverse_depth":
              ctx.record(F.MC_CORR_CHANGE, float(np.mean(np.abs(gram.correlations(k, pairs)
                                                                - gram.correlations(k_start, pairs)))),
                         seed=seed, **labels)
          counter.advance()
    _record_path_slopes(config, ctx, act, tuple(inputs.pairs))


def path_points(config: CommutativityConfig) -> dict[str, list[tuple[int, int]]]:
  """(n, L) along the two finite-width paths: depth first (L = largest depth, n growing) and joint (n = L)."""
  return {"depth_first": [(n, max(config.depths)) for n in config.widths],
          "joint": [(n, n) for n in config.joint_sizes]}


def _record_path_slopes(config: CommutativityConfig, ctx, act: str, input_sets: Sequence[str]) -> None:
  """Per seed: the power-law slope of the Monte Carlo distance vs n along the depth-first and joint paths."""
  table = ctx.view(F.MC_CORR_ERROR).of(F.MC_CORR_ERROR).select(act=act)
  for input_set in input_sets:
    grid = table.select(inputs=input_set).grid("n", "L")
    for path, points in path_points(config).items():
      sizes = np.array([p[0] for p in points], dtype=np.float64)
      for seed in ctx.seeds:
        values = [grid[point].values[grid[point].seeds.index(seed)] for point in points]
        ctx.record(F.MC_SLOPE, stats.fit_power_law(sizes, values).slope, seed=seed, path=path, act=act,
                   inputs=input_set)


def run_keras(config: CommutativityConfig, ctx, inputs: Inputs, limits) -> None:
  """Keras nets vs the Gram simulator at `keras_points`: KS tests on c_L per pair and on q_L (package docstring)."""
  from scipy import stats as scipy_stats  # pylint: disable=import-outside-toplevel
  points, pairs = inputs.points["synthetic"], inputs.pairs["synthetic"]
  x = inputs.x[points]
  k0 = inputs.kernel[np.ix_(points, points)]
  local = [(points.index(i), points.index(j)) for i, j in pairs]
  per_seed = config.keras_nets_per_seed
  for a_index, act in enumerate(config.activations):
    limit = limits[act, "synthetic"].corr
    for n, depth in config.keras_points:
      s = BRANCH_SCALES[MAIN_SCALE](depth)
      net = KerasResidualNet(act, n, depth, s, x.shape[1], ctx.dtype)
      samples = {"keras": [], "gram": []}
      for seed in ctx.seeds:
        y_keras = net.sample(x, [seeding.seed31(seed, a_index, n, depth, STREAM_KERAS_NETS, j) for j in range(per_seed)])
        _, y_gram = gram.simulate_gram(k0, n, depth, s, act, per_seed,
                                       seeding.rng(seed, a_index, n, depth, STREAM_KERAS_GRAM), ctx.dtype)
        for name, y in (("keras", y_keras), ("gram", y_gram)):
          k = gram.second_moments(y)
          samples[name].append((gram.correlations(k, local), k[:, 0, 0]))
        c_keras = samples["keras"][-1][0]
        ctx.record(F.KERAS_CORR_ERROR, float(np.mean(np.abs(c_keras - limit))), seed=seed, act=act,
                   inputs="synthetic", n=n, L=depth)
      (c_k, q_k), (c_g, q_g) = ((np.concatenate([c for c, _ in samples[name]]),
                                 np.concatenate([q for _, q in samples[name]])) for name in ("keras", "gram"))
      for p, c0 in enumerate(config.input_correlations):
        ctx.record(F.KS_PVALUE, float(scipy_stats.ks_2samp(c_k[:, p], c_g[:, p]).pvalue), act=act, n=n, L=depth,
                   statistic=f"c0={c0:g}")
      ctx.record(F.KS_PVALUE, float(scipy_stats.ks_2samp(q_k, q_g).pvalue), act=act, n=n, L=depth,
                 statistic="q_anchor")


def run_gaussianity(config: CommutativityConfig, ctx) -> None:
  one_input = np.ones((1, 1))
  counter = ctx.counter(len(config.activations) * len(config.gauss_depths) * len(config.gauss_widths))
  for a_index, act in enumerate(config.activations):
    for depth in config.gauss_depths:
      for n in config.gauss_widths:
        nets = -(-config.gauss_samples // n)
        rngs = [seeding.rng(seed, a_index, n, depth, STREAM_GAUSSIANITY) for seed in ctx.seeds]
        simulated = gram.simulate_gram_streams(one_input, n, depth, BRANCH_SCALES[MAIN_SCALE](depth), act, nets, rngs,
                                               ctx.dtype)
        for seed, (_, y) in zip(ctx.seeds, simulated):
          ctx.record(F.GAUSS_KURTOSIS, gram.excess_kurtosis(y), seed=seed, act=act, L=depth, n=n)
        counter.advance()


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
  ctx.note("monte_carlo_simulator", "Gram recursion (exact in distribution), numpy float64; see harness/residual_gram.py")
  ctx.note("kernel_evaluation", "harness.nets DepthProfile.kernel (the blocks as one compiled loop)")
  ctx.note("keras_nets", f"harness.nets spec.keras_model, {ctx.dtype}, Keras backend {_keras_backend()}, "
                         f"{config.keras_nets_per_seed * len(ctx.seeds)} nets per point")
