"""Empirical (finite-width) kernels of Keras models, and their Monte Carlo average over initialisations.

Empirical NTK (Jacot et al. 2018, arXiv 1806.07572, Eq. for Theta; NT `empirical_ntk_fn` with
`trace_axes=(-1,)`): for a model f(theta, x) with k outputs,

    Theta(x1, x2) = 1/k sum_o sum_p  d f_o(x1)/d theta_p  d f_o(x2)/d theta_p,

summed over every trainable parameter and averaged (traced) over outputs; with `trace_outputs=False` the
(n1, n2, k, k) matrix sum_p J1[:, o] J2[:, o']^T. Inputs are processed in batches (the last one padded to
full size so the Jacobian compiles once); peak memory is two Jacobians, 2 x batch_size x k x #params
floats. The Jacobian itself is the one backend-specific piece (`backends/<name>.py: jacobian`).

Structured derivatives (NT's `implementation=STRUCTURED_DERIVATIVES` idea, for the one layer kind where it pays
most): a Dense layer on flat inputs, z = m_w a W + m_b b, has d f_o / d W = m_w a (x) delta_o with delta_o = d f_o / d z,
so its weight block of the NTK is m_w^2 (a . a') sum_o (delta_o . delta'_o), while d f_o / d b = m_b delta_o. The
Jacobian is therefore taken with respect to every parameter except those layers' weights (d f / d b gives delta,
when m_b != 0), the layers' inputs a come from the forward pass, and the weight block costs n1 n2 (fan_in + k units)
instead of n1 n2 k fan_in units. Other layers (convolutions, Dense per pixel, bias-free Dense) keep the Jacobian.

Monte Carlo kernels (NT `monte_carlo_kernel_fn`): the mean over `n_samples` independently initialised
networks of the output covariance f(x1) f(x2)^T / k (NNGP) and of the empirical NTK. Both converge to the
analytic kernels as width -> inf and n_samples -> inf in the NTK parameterization. In the standard
parameterization the NNGP converges too, but the NTK does not have a width-independent limit: the
gradient with respect to a weight of fan-in n is O(1) while there are O(n) of them per unit, so the
parameter sum grows like the width (NT's standard-parameterization NTK is finite only after the
learning rate is scaled by 1/width, which it folds into the kernel).
"""
from __future__ import annotations

import collections
import json
from typing import Callable, Sequence

import keras
import numpy as np

from harness.nets import _batching
from harness.nets import backends

DEFAULT_BATCH_SIZE = 16
DEFAULT_NUM_OUTPUTS = 16
KERNELS = _batching.KERNELS


def _flat_dense_layers(model: keras.Model) -> list:
  """The NTKDense layers of `model` that act on flat (batch, features) inputs, are called once and have a nonzero
  bias multiplier: their weight block of the NTK has the structured form of the module docstring."""
  from harness.nets import _layers  # pylint: disable=import-outside-toplevel
  out = []
  for layer in model.layers:
    if not isinstance(layer, _layers.NTKDense) or layer.scaling.bias_multiplier == 0.0:
      continue
    try:
      shape = layer.input.shape
    except (AttributeError, ValueError):   # not called, or called more than once: no single input tensor
      continue
    if len(shape) == 2:
      out.append(layer)
  return out


class _Contractions:
  """Compiled functions of (trainable values, non-trainable values, inputs) for one model structure.

  Holding these per structure lets Monte Carlo reuse one compiled graph across initialisations. Structured
  derivatives for flat Dense layers (module docstring): their weight Jacobians are never formed; the Jacobian is
  taken, per example, of the other parameters only (their biases included), and the layers' inputs come from one
  forward pass.
  """

  def __init__(self, model: keras.Model, trace_outputs: bool):
    backend = backends.current()
    self.trace_outputs = trace_outputs
    variables = model.trainable_variables
    position = {id(v): i for i, v in enumerate(variables)}
    fixed_position = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    structured = []   # (bias index, (weight multiplier / bias multiplier)^2) per structured layer
    probe = None
    layers = _flat_dense_layers(model)
    if layers:
      probe = keras.Model(model.inputs, [model.outputs[0]] + [layer.input for layer in layers])
      probe_params = [position[id(v)] for v in probe.trainable_variables]
      probe_fixed = [fixed_position[id(v)] for v in probe.non_trainable_variables]
      structured = [(position[id(layer.bias)],
                     (layer.scaling.weight_multiplier / layer.scaling.bias_multiplier) ** 2) for layer in layers]
    skipped = {position[id(layer.kernel)] for layer in layers}
    jacobian_indices = [i for i in range(len(variables)) if i not in skipped]

    def forward(params, non_trainable, x):
      y, _ = model.stateless_call(params, non_trainable, x, training=False)
      return y

    def layer_inputs(params, non_trainable, x):
      if probe is None:
        return []
      out, _ = probe.stateless_call([params[i] for i in probe_params], [non_trainable[i] for i in probe_fixed], x,
                                    training=False)
      return out[1:]

    def jacobians(params, non_trainable, x):
      def partial(subset, xx):
        full = list(params)
        for i, value in zip(jacobian_indices, subset):
          full[i] = value
        return forward(full, non_trainable, xx)

      # per example: measured faster for FC and CNN-GAP blocks alike (backends/tensorflow.py `jacobian`)
      flat = backend.jacobian(partial, [params[i] for i in jacobian_indices], x, per_example=True)
      b = keras.ops.shape(x)[0]
      by_index = {i: keras.ops.reshape(j, (b, keras.ops.shape(j)[1], -1)) for i, j in zip(jacobian_indices, flat)}
      return by_index, layer_inputs(params, non_trainable, x)

    def pair(a, b):
      if trace_outputs:
        return keras.ops.einsum("akp,bkp->ab", a, b) / keras.ops.cast(keras.ops.shape(a)[1], a.dtype)
      return keras.ops.einsum("akp,blp->abkl", a, b)

    def contract(side_a, side_b):
      (ja, inputs_a), (jb, inputs_b) = side_a, side_b
      total = None
      for i in jacobian_indices:
        term = pair(ja[i], jb[i])
        total = term if total is None else total + term
      for (bias, ratio), xa, xb in zip(structured, inputs_a, inputs_b):
        gram = ratio * keras.ops.matmul(xa, keras.ops.transpose(xb))
        if not trace_outputs:
          gram = gram[:, :, None, None]
        total = total + gram * pair(ja[bias], jb[bias])   # weight block: (a . a') (delta . delta')
      return total

    def ntk_pair(params, non_trainable, xa, xb):
      return contract(jacobians(params, non_trainable, xa), jacobians(params, non_trainable, xb))

    def ntk_same(params, non_trainable, xa):
      ja = jacobians(params, non_trainable, xa)
      return contract(ja, ja)

    self.forward = backend.compile(forward)
    self.ntk_pair = backend.compile(ntk_pair)
    self.ntk_same = backend.compile(ntk_same)


def structure_key(model: keras.Model) -> tuple:
  """What graphs compiled from a model depend on: the layers' classes, configs (names and initialiser seeds aside) and
  weight shapes and dtypes, and the Keras backend.

  Two models with equal keys (the same spec, width and dtype built with different seeds, or one model before and
  after training) can run through the same compiled graphs with their own weight values.
  """
  layers = []
  for layer in model.layers:
    config = {k: v for k, v in layer.get_config().items() if k not in ("name", "seed")}
    layers.append((type(layer).__name__, json.dumps(config, sort_keys=True, default=str),
                   tuple((tuple(w.shape), str(w.dtype)) for w in layer.weights)))
  return (type(model).__name__, tuple(layers), keras.backend.backend())


class StructureCache:
  """build(model, *args), built once per (structure_key(model), args) and kept in a small LRU cache: compiled
  functions of a model's structure, shared by every model of that structure."""

  def __init__(self, build: Callable, size: int = 16):
    self._build, self._size = build, size
    self._entries: collections.OrderedDict = collections.OrderedDict()

  def __call__(self, model: keras.Model, *args):
    key = (structure_key(model), args)
    if key in self._entries:
      self._entries.move_to_end(key)
      return self._entries[key]
    built = self._entries[key] = self._build(model, *args)
    while len(self._entries) > self._size:
      self._entries.popitem(last=False)
    return built

  def clear(self) -> None:
    self._entries.clear()


_contractions = StructureCache(_Contractions)  # (model, trace_outputs) -> the compiled contractions of its structure


def _values(model: keras.Model) -> tuple[list, list]:
  # the values as tensors (under a tf.distribute strategy, v.value is a mirrored variable a compiled tape cannot watch)
  return ([keras.ops.convert_to_tensor(v) for v in model.trainable_variables],
          [keras.ops.convert_to_tensor(v) for v in model.non_trainable_variables])


def _ntk(contractions: _Contractions, params, non_trainable, x1: np.ndarray, x2: np.ndarray | None,
         batch_size: int) -> np.ndarray:
  symmetric = x2 is None
  other = x1 if symmetric else x2
  rows, cols = _batching.blocks(x1.shape[0], batch_size), _batching.blocks(other.shape[0], batch_size)
  size = min(batch_size, max(x1.shape[0], other.shape[0]))
  out = None
  for i, (r0, r1) in enumerate(rows):
    xa = _batching.padded(x1, r0, r1, size)
    for j, (c0, c1) in enumerate(cols):
      if symmetric and j < i:
        continue
      if symmetric and i == j:
        block = contractions.ntk_same(params, non_trainable, xa)
      else:
        block = contractions.ntk_pair(params, non_trainable, xa, _batching.padded(other, c0, c1, size))
      block = keras.ops.convert_to_numpy(block)[:r1 - r0, :c1 - c0]
      if out is None:
        out = np.empty((x1.shape[0], other.shape[0]) + block.shape[2:], dtype=block.dtype)
      out[r0:r1, c0:c1] = block
      if symmetric and i != j:
        out[c0:c1, r0:r1] = np.swapaxes(block, 0, 1) if block.ndim == 2 else block.transpose(1, 0, 3, 2)
  return out


def outputs(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
  """The model's outputs f(x) (float64, inference mode) through the compiled forward of its structure: nets of one
  spec and width built with other seeds, or one net before and after training, reuse one compiled graph (Keras'
  `predict` builds a function for every model)."""
  dtype = model.trainable_variables[0].dtype
  x = np.asarray(x, dtype=dtype)
  params, non_trainable = _values(model)
  forward = _contractions(model, True).forward
  size = min(batch_size, len(x))
  blocks = [keras.ops.convert_to_numpy(forward(params, non_trainable, _batching.padded(x, r0, r1, size)))[:r1 - r0]
            for r0, r1 in _batching.blocks(len(x), size)]
  return np.concatenate(blocks).astype(np.float64)


def empirical_ntk(model: keras.Model, x1: np.ndarray, x2: np.ndarray | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, trace_outputs: bool = True) -> np.ndarray:
  """Finite-width NTK of `model` at its current weights (module docstring): (n1, n2) or (n1, n2, k, k)."""
  dtype = model.trainable_variables[0].dtype
  x1 = np.asarray(x1, dtype=dtype)
  x2 = None if x2 is None else np.asarray(x2, dtype=dtype)
  params, non_trainable = _values(model)
  return _ntk(_contractions(model, trace_outputs), params, non_trainable, x1, x2, batch_size)


def empirical_nngp(model: keras.Model, x1: np.ndarray, x2: np.ndarray | None = None,
                   trace_outputs: bool = True) -> np.ndarray:
  """Output outer product of one network, f(x1) f(x2)^T / k (NT `empirical_nngp_fn`, trace_axes=(-1,))."""
  f1 = np.asarray(model(np.asarray(x1, dtype=model.trainable_variables[0].dtype), training=False))
  f2 = f1 if x2 is None else np.asarray(model(np.asarray(x2, dtype=f1.dtype), training=False))
  if trace_outputs:
    return f1 @ f2.T / f1.shape[1]
  return np.einsum("ak,bl->abkl", f1, f2)


def monte_carlo_kernels(spec, x1: np.ndarray, x2: np.ndarray | None = None, *, width: int, n_samples: int,
                        parameterization: str = "ntk", get: str | Sequence[str] = KERNELS, seed: int = 0,
                        input_shape: Sequence[int] | None = None, num_outputs: int = DEFAULT_NUM_OUTPUTS,
                        batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, np.ndarray] | np.ndarray:
  """Mean of empirical NNGP / NTK over `n_samples` nets `spec.keras_model(width, ..., seed=seed + s)`.

  Returns {name: (n1, n2)} or the bare array when `get` is a string. `input_shape` defaults to
  x1.shape[1:]. Every sample is a fresh initialisation; the compiled forward / Jacobian graph is shared.
  """
  names = _batching.canonical_get(get)
  if n_samples < 1:
    raise ValueError(f"n_samples must be >= 1, got {n_samples}")
  input_shape = tuple(x1.shape[1:] if input_shape is None else input_shape)

  def build(s: int) -> keras.Model:
    return spec.keras_model(width=width, input_shape=input_shape, num_outputs=num_outputs,
                            parameterization=parameterization, seed=seed + s)

  template = build(0)
  dtype = template.trainable_variables[0].dtype
  x1 = np.asarray(x1, dtype=dtype)
  x2 = None if x2 is None else np.asarray(x2, dtype=dtype)
  both = x1 if x2 is None else np.concatenate([x1, x2])
  contractions = _contractions(template, True)
  totals = {g: 0.0 for g in names}
  for s in range(n_samples):
    params, non_trainable = _values(template if s == 0 else build(s))
    if "nngp" in names:
      f = keras.ops.convert_to_numpy(contractions.forward(params, non_trainable, both)).astype(np.float64)
      f1, f2 = f[:x1.shape[0]], f[x1.shape[0]:] if x2 is not None else f
      totals["nngp"] = totals["nngp"] + f1 @ f2.T / f.shape[1]
    if "ntk" in names:
      totals["ntk"] = totals["ntk"] + _ntk(contractions, params, non_trainable, x1, x2,
                                           batch_size).astype(np.float64)
  means = {g: totals[g] / n_samples for g in names}
  return means[get] if isinstance(get, str) else means
