"""The run of `width_consistency`: learning-rate sweep, training over widths and seeds, coordinate check, and the
metrics computed from the kept predictions (package docstring)."""
from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np

from harness import online, stats

from benchmarks.width_consistency import families as F
from benchmarks.width_consistency.config import WidthConfig
from benchmarks.width_consistency.data import Data, load

NUM_CLASSES = 10
PARAMETERIZATION = {"mup": "mup", "sp": "standard"}   # family label -> harness.nets parameterization


def spec(depth: int):
  """Flatten, `depth` x (Dense, ReLU), Dense readout (harness.nets; w_std = sqrt 2 for ReLU, no bias scale)."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  hidden = [nets.Dense(w_std=2.0 ** 0.5, b_std=0.0), nets.Relu()] * depth
  return nets.serial(nets.Flatten(), *hidden, nets.Dense(w_std=1.0, b_std=0.0))


def cnn_spec(depth: int):
  """`depth` x (3x3 Conv 'SAME', ReLU), GlobalAvgPool, Dense readout: the CPU tiers' small CNN (harness.nets)."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  hidden = [nets.Conv(3, w_std=2.0 ** 0.5, b_std=0.0), nets.Relu()] * depth
  return nets.serial(*hidden, nets.GlobalAvgPool(), nets.Dense(w_std=1.0, b_std=0.0))


class Nets:
  """One Keras model per (architecture, param, width) for all of a run's seeds and learning rates:
  `nets.reinitialize` redraws its weights exactly as building it with the seed would (ResNets included: their layers
  are affine layers numbered as spec.keras_model numbers them, no BatchNorm), so what is compiled on it
  (harness.online's train step and forward pass, which take the learning rate as an input; the Hessian probe; the
  hidden-layer readout) is compiled once per width, not once per seed and rate. The models stay for the whole run
  (the pre-flight counts them: needs.py; the paper tier's ten ResNets hold about 7.6 GB of float32 weights). A
  pickled Nets (the lr sweep's function sent to Beam workers) arrives empty: each worker process builds its own."""

  def __init__(self):
    self._models, self._probes, self._readouts = {}, {}, {}

  def __reduce__(self):
    return (Nets, ())

  def model(self, config: WidthConfig, param: str, width: int, seed: int, input_shape):
    key = (config.model, config.depth, config.resnet_blocks, config.dtype, param, width, tuple(input_shape))
    if config.model == "resnet18":
      key += (config.width_multipliers[config.widths.index(width)],)
    model = self._models.get(key)
    if model is None:
      model = _model(config, param, width, seed, input_shape)
      if not model.non_trainable_variables:  # state that nets.reinitialize would not redraw: built per call
        self._models[key] = model
      return model
    from harness import nets  # pylint: disable=import-outside-toplevel
    return nets.reinitialize(model, seed)

  def _kept(self, model) -> bool:
    """Whether `model` is one of the width models held here (their ids stay theirs while they are held)."""
    return any(m is model for m in self._models.values())

  def probe(self, model, make):
    """The model's Hessian probe: `make()` once for a width's model (afresh for a model not held here)."""
    if not self._kept(model):
      return make()
    if id(model) not in self._probes:
      self._probes[id(model)] = make()
    return self._probes[id(model)]

  def hidden_layers(self, model, before_activation: bool = False):
    """`hidden_layers(model, before_activation)`: one Keras model (and its compiled predict) per width's model
    (afresh for a model not held here, as `probe`)."""
    if not self._kept(model):
      return hidden_layers(model, before_activation)
    key = (id(model), before_activation)
    if key not in self._readouts:
      self._readouts[key] = hidden_layers(model, before_activation)
    return self._readouts[key]


def _model(config: WidthConfig, param: str, width: int, seed: int, input_shape):
  if config.model == "resnet18":
    from harness import nets  # pylint: disable=import-outside-toplevel
    multiplier = config.width_multipliers[config.widths.index(width)]
    return nets.cifar_resnet(multiplier, input_shape=input_shape, num_outputs=NUM_CLASSES,
                             parameterization=PARAMETERIZATION[param], seed=seed, dtype=config.dtype,
                             blocks=config.resnet_blocks)
  architecture = (cnn_spec if config.model == "cnn" else spec)(config.depth)
  return architecture.keras_model(width=width, input_shape=input_shape, num_outputs=NUM_CLASSES,
                                  parameterization=PARAMETERIZATION[param], seed=seed, dtype=config.dtype)


def _multipliers(model, param: str, base_width: int):
  from harness import nets  # pylint: disable=import-outside-toplevel
  return nets.mup_lr_multipliers(model, base_width, "sgd") if param == "mup" else None


def train(config: WidthConfig, data: Data, param: str, width: int, seed: int, steps: int, log2_lr: float,
          log_steps, watch=None, nets: Nets | None = None) -> tuple[online.OnlineResult, object]:
  """One net trained online on the shared stream; returns (result, model). `watch(model, multipliers)`, if given,
  returns the on_log(step, model) called at every logged step (harness.online.train_online). `nets`: the run's
  models, one per width (`Nets`); the model returned is then that width's, until its next training."""
  input_shape = data.train_x.shape[1:]
  model = (nets.model(config, param, width, seed, input_shape) if nets is not None
           else _model(config, param, width, seed, input_shape))
  multipliers = _multipliers(model, param, config.widths[0])
  result = online.train_online(
      model, data.batches(steps, config.batch_size), data.eval_x, data.eval_labels,
      online.OnlineConfig(steps=steps, learning_rate=2.0 ** log2_lr, momentum=config.momentum, loss="xent",
                          jit_compile=config.jit_compile),
      multipliers, log_steps=log_steps, on_log=watch(model, multipliers) if watch else None)
  return result, model


def sharpness_watch(config: WidthConfig, data: Data, seed: int, log2_lr: float, out: dict, nets: Nets):
  """A `train` watch putting the edge-of-stability ratio lr lambda_max / 2 (harness.sharpness, on the fixed
  sharpness batch, rates preconditioned by the net's multipliers) at every logged step into out[step]."""
  from harness import sharpness  # pylint: disable=import-outside-toplevel

  def watch(model, multipliers):
    probe = nets.probe(model, lambda: sharpness.HessianProbe(
        model, data.train_x[:config.sharpness_examples], data.train_labels[:config.sharpness_examples], "xent",
        multipliers, jit_compile=config.jit_compile))

    def on_log(step, _):
      top = probe.top_eigenvalue(config.sharpness_iterations, seed=seed)
      out[step] = sharpness.edge_of_stability_ratio(top.eigenvalue, 2.0 ** log2_lr)
    return on_log
  return watch


def hidden_layers(model, before_activation: bool = False):
  """A Keras model from the net's input to every hidden layer's output (its ReLUs), or to their pre-activations."""
  import keras  # pylint: disable=import-outside-toplevel
  relus = [layer for layer in model.layers if type(layer).__name__ == "ReLU"]
  return keras.Model(model.inputs[0], [layer.input if before_activation else layer.output for layer in relus])


def _final_loss(result: online.OnlineResult) -> float:
  return result.test_loss[-1] if not result.diverged else float("inf")


def sweep_point(config: WidthConfig, data: Data, param: str, width: int, log2_lr: float, seed: int,
                nets: Nets | None = None) -> dict:
  """One point of the learning-rate sweep: {"loss": the final test loss (inf if the net diverged)}."""
  result, _ = train(config, data, param, width, seed, config.sweep_steps, log2_lr, None, nets=nets)
  return {"loss": np.float64(_final_loss(result))}


def run_lr_sweep(config: WidthConfig, ctx, data: Data, nets: Nets | None = None) -> dict[str, float]:
  """Short runs over the grid at every width; the base rate of each parameterization is the best at the base width.
  Every (param, width, rate, seed) point is independent: `ctx.engine.map` runs them here or as Beam elements. `nets`:
  the run's models (`Nets`), one per width for every rate and seed (a Beam worker builds its own)."""
  points = [{"param": param, "width": width, "log2_lr": float(log2_lr), "seed": seed}
            for param in F.PARAMS for width in config.widths for log2_lr in config.log2_lr_grid[param]
            for seed in config.sweep_seeds]
  results = ctx.engine.map(functools.partial(sweep_point, config, data, nets=nets or Nets()), points,
                           on_point=ctx.counter(len(points)).advance)
  losses = {}
  for point, result in zip(points, results):
    loss = float(result["loss"])
    losses.setdefault((point["param"], point["width"], point["log2_lr"]), []).append(loss)
    if np.isfinite(loss):
      ctx.record(F.LR_SWEEP_LOSS, loss, seed=point["seed"], param=point["param"], N=point["width"],
                 log2_lr=point["log2_lr"])
  chosen = {}
  for param in F.PARAMS:
    for width in config.widths:
      means = {log2_lr: float(np.mean(losses[param, width, float(log2_lr)])) for log2_lr in config.log2_lr_grid[param]}
      best = min(means, key=means.get)
      ctx.record(F.BEST_LOG2_LR, best, param=param, N=width)
      if width == config.widths[0]:
        chosen[param] = best
  ctx.note("base_log2_lr", chosen)
  return chosen


def run_training(config: WidthConfig, ctx, data: Data, base_lr: dict[str, float], nets: Nets) -> dict:
  """({(param, width, seed): {step: predictions}}, {(param, width, seed): last hidden layer's pre-activations on
  the first preact_examples evaluation images at the last step, flattened}); records test loss and accuracy at the
  logged steps, and the sharpness ratio along training for the first sharpness_seeds seeds."""
  predictions, preactivations = {}, {}
  for param, width, seed in ctx.progress(list(itertools.product(F.PARAMS, config.widths, ctx.seeds))):
    sharpness = {}
    watch = sharpness_watch(config, data, seed, base_lr[param], sharpness, nets) \
        if seed in ctx.seeds[:config.sharpness_seeds] else None
    result, model = train(config, data, param, width, seed, config.steps, base_lr[param], config.log_steps,
                          watch, nets)
    if result.diverged:
      raise RuntimeError(f"{param} width {width} seed {seed} diverged at base rate 2^{base_lr[param]}")
    for step, ratio in sharpness.items():
      ctx.record(F.SHARPNESS, ratio, seed=seed, param=param, N=width, step=step)
    last_hidden = nets.hidden_layers(model, before_activation=True).predict_on_batch(
        data.eval_x[:config.preact_examples])[-1]
    preactivations[param, width, seed] = np.asarray(last_hidden, np.float64).ravel()
    for step, loss, acc in zip(result.steps, result.test_loss, result.test_accuracy):
      ctx.record(F.TEST_LOSS, loss, seed=seed, param=param, N=width, step=step)
      ctx.record(F.TEST_ACC, acc, seed=seed, param=param, N=width, step=step)
    predictions[param, width, seed] = result.predictions
    ctx.curve(f"train_loss/{param}/N={width}", np.arange(len(result.train_loss)), result.train_loss, seed=seed,
              x_label="step", y_label="training batch loss (before the update)")
  return predictions, preactivations


def record_preactivation_distances(config: WidthConfig, ctx, preactivations: dict) -> None:
  """Per seed, the two-sample KS statistic between width N's and the widest net's pre-activation values."""
  from scipy import stats as scipy_stats  # pylint: disable=import-outside-toplevel
  for param in F.PARAMS:
    for seed in ctx.seeds:
      widest = preactivations[param, config.widths[-1], seed]
      for width in config.widths[:-1]:
        distance = scipy_stats.ks_2samp(preactivations[param, width, seed], widest).statistic
        ctx.record(F.PREACT_DISTANCE, float(distance), seed=seed, param=param, N=width)


def disagreement(f: np.ndarray, ref: np.ndarray) -> float:
  """Mean over examples of ||f(x) - ref(x)||^2 (outputs (n, k)), in float64."""
  gap = np.asarray(f, np.float64) - np.asarray(ref, np.float64)
  return float(np.mean(np.sum(gap * gap, axis=1)))


def record_prediction_metrics(config: WidthConfig, ctx, data: Data, predictions: dict) -> None:
  """Disagreement with the widest net, its slope in N, the output variance across seeds, ensembles."""
  widest, narrow = config.widths[-1], config.widths[:-1]
  last = config.steps
  for param in F.PARAMS:
    for step in config.log_steps:
      for seed in ctx.seeds:
        ref = predictions[param, widest, seed][step]
        values = []
        for width in narrow:
          values.append(disagreement(predictions[param, width, seed][step], ref))
          ctx.record(F.DISAGREEMENT, values[-1], seed=seed, param=param, N=width, step=step)
        if step > 0 and len(narrow) >= 3:
          ctx.record(F.DISAGREEMENT_SLOPE, stats.fit_power_law(narrow, values).slope, seed=seed, param=param,
                     step=step)
      for width in config.widths:
        stacked = np.stack([predictions[param, width, seed][step] for seed in ctx.seeds]).astype(np.float64)
        ctx.record(F.OUTPUT_VARIANCE, float(np.mean(np.var(stacked, axis=0, ddof=1))), param=param, N=width,
                   step=step)
    for k in sorted({1, config.ensemble_size}):   # K = 1: the single nets, scored by the same function
      groups = [ctx.seeds[i:i + k] for i in range(0, len(ctx.seeds), k)]
      for width in config.widths:
        for index, group in enumerate(groups):
          logits = np.mean([predictions[param, width, seed][last] for seed in group], axis=0)
          ctx.record(F.ENSEMBLE_LOSS, online.numpy_scores("xent", logits, data.eval_labels)[0], seed=index, param=param, N=width, K=k)


def run_coordinates(config: WidthConfig, ctx, data: Data, base_lr: dict[str, float], nets: Nets) -> None:
  """Mean |activation| of every hidden layer on the first training batch after 0..coordinate_steps steps (one run
  per net, read at each step)."""
  batch = data.train_x[:config.batch_size]
  for param in F.PARAMS:
    for width in config.widths:
      for seed in ctx.seeds[:config.coordinate_seeds]:

        def watch(model, _, param=param, width=width, seed=seed):
          features = nets.hidden_layers(model)

          def on_log(step, __):
            for layer, h in enumerate(features.predict_on_batch(batch)):
              ctx.record(F.COORDINATE, float(np.mean(np.abs(h))), seed=seed, param=param, layer=layer, N=width,
                         step=step)
          return on_log

        train(config, data, param, width, seed, config.coordinate_steps, base_lr[param],
              range(config.coordinate_steps + 1), watch, nets)


def run_cnn(config: WidthConfig, ctx, data: Data, nets: Nets) -> None:
  """The small CNN (muP only) on the same stream: its base rate tuned at the base width on cnn_log2_lr_grid
  (sweep_steps, the first sweep seed), then cnn_widths x the first cnn_seeds seeds trained for the tier's steps;
  records the test-loss curves and D_N against the widest CNN."""
  cnn = dataclasses.replace(config, model="cnn", widths=config.cnn_widths, width_multipliers=())
  base, seed0 = cnn.widths[0], config.sweep_seeds[0]
  sweep = {}
  for log2_lr in config.cnn_log2_lr_grid:
    sweep[log2_lr] = _final_loss(train(cnn, data, "mup", base, seed0, config.sweep_steps, log2_lr, None,
                                       nets=nets)[0])
    if np.isfinite(sweep[log2_lr]):
      ctx.record(F.CNN_LR_SWEEP_LOSS, sweep[log2_lr], seed=seed0, param="mup", N=base, log2_lr=log2_lr)
  rate = min(sweep, key=sweep.get)
  ctx.note("cnn_base_log2_lr", rate)
  seeds, predictions = ctx.seeds[:config.cnn_seeds], {}
  for width in cnn.widths:
    for seed in seeds:
      result, _ = train(cnn, data, "mup", width, seed, config.steps, rate, config.log_steps, nets=nets)
      if result.diverged:
        raise RuntimeError(f"CNN width {width} seed {seed} diverged at base rate 2^{rate}")
      for step, loss in zip(result.steps, result.test_loss):
        ctx.record(F.CNN_TEST_LOSS, loss, seed=seed, param="mup", N=width, step=step)
      predictions[width, seed] = result.predictions
  for step in config.log_steps:
    for seed in seeds:
      widest = predictions[cnn.widths[-1], seed][step]
      for width in cnn.widths[:-1]:
        ctx.record(F.CNN_DISAGREEMENT, disagreement(predictions[width, seed][step], widest), seed=seed, param="mup",
                   N=width, step=step)


def run(config: WidthConfig, ctx) -> None:
  with ctx.phase("data"):
    data = load(ctx, config)
  nets = Nets()
  with ctx.phase("lr_sweep"):
    base_lr = run_lr_sweep(config, ctx, data, nets)
  with ctx.phase("train"):
    predictions, preactivations = run_training(config, ctx, data, base_lr, nets)
  with ctx.phase("prediction_metrics"):
    record_prediction_metrics(config, ctx, data, predictions)
    record_preactivation_distances(config, ctx, preactivations)
  with ctx.phase("coordinates"):
    run_coordinates(config, ctx, data, base_lr, nets)
  if config.cnn_widths:
    with ctx.phase("cnn"):
      run_cnn(config, ctx, data, nets)
