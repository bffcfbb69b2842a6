"""harness.sharpness: power iteration against the closed-form Hessian of a linear model under MSE, with and
without learning-rate multipliers, and the edge-of-stability ratio. Backend portable."""
import numpy as np
import pytest

from harness import nets, sharpness
from harness.nets import _layers

pytestmark = pytest.mark.backend_portable

D, K, BATCH = 6, 3, 20


def _linear(dtype="float64"):
  return nets.serial(nets.Dense(w_std=1.3, b_std=0.7)).keras_model(width=4, input_shape=(D,), num_outputs=K,
                                                                    parameterization="ntk", seed=1, dtype=dtype)


def _exact(model, x, weight_multiplier=1.0, bias_multiplier=1.0):
  """L = 1/(2 B k) sum (a x W + c b - y)^2 is quadratic: per output, the Hessian in (W_:j, b_j) is Z^T Z / (B k)
  with Z = [a x, c 1]; preconditioned by P: Z P^1/2."""
  s = _layers.affine_layers(model)[0].scaling
  z = np.concatenate([s.weight_multiplier * x * np.sqrt(weight_multiplier),
                      s.bias_multiplier * np.ones((len(x), 1)) * np.sqrt(bias_multiplier)], axis=1)
  return float(np.linalg.eigvalsh(z.T @ z / (len(x) * K))[-1])


def test_power_iteration_matches_the_closed_form_hessian():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(BATCH, D)) * np.linspace(0.5, 2.0, D), rng.normal(size=(BATCH, K))
  model = _linear()
  result = sharpness.top_hessian_eigenvalue(model, x, y, loss="mse", iterations=200, rtol=1e-10)
  assert result.converged
  assert result.eigenvalue == pytest.approx(_exact(model, x), rel=1e-6)


def test_multipliers_precondition_the_hessian():
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=(BATCH, D)), rng.normal(size=(BATCH, K))
  model = _linear()
  layer = _layers.affine_layers(model)[0]
  multipliers = {layer.kernel.path: 4.0, layer.bias.path: 25.0}
  result = sharpness.top_hessian_eigenvalue(model, x, y, loss="mse", lr_multipliers=multipliers, iterations=300,
                                            rtol=1e-10)
  assert result.eigenvalue == pytest.approx(_exact(model, x, 4.0, 25.0), rel=1e-6)
  assert result.eigenvalue > 1.5 * _exact(model, x)


def test_float32_cross_entropy_and_the_ratio():
  rng = np.random.default_rng(2)
  x, labels = rng.normal(size=(BATCH, D)), rng.integers(0, K, size=BATCH)
  model = nets.serial(nets.Dense(w_std=2**0.5), nets.Relu(), nets.Dense()).keras_model(
      width=16, input_shape=(D,), num_outputs=K, parameterization="mup", seed=0, dtype="float32")
  result = sharpness.top_hessian_eigenvalue(model, x, labels, loss="xent", lr_multipliers=nets.mup_lr_multipliers(model, 8))
  assert result.eigenvalue > 0 and np.isfinite(result.eigenvalue)
  assert sharpness.edge_of_stability_ratio(result.eigenvalue, 2.0 / result.eigenvalue) == pytest.approx(1.0)
  with pytest.raises(ValueError):
    sharpness.top_hessian_eigenvalue(model, x, labels, lr_multipliers={"nope": 1.0})
