"""Analytic NNGP / NTK of harness.nets specs: closed forms, an independent numpy recursion, structure, errors."""
import math

import numpy as np
import pytest

from harness import nets
from harness.nets import _evaluate
from tests.nets import helpers

SEED = 0
SQRT2 = math.sqrt(2.0)
RTOL = 1e-12  # float64 against numpy formulas (different summation orders only)
KERNELS = ("nngp", "ntk")


def _images(n, size=5, channels=3, seed=SEED):
  return np.random.default_rng(seed).standard_normal((n, size, size, channels))


def _vectors(n, dim=7, seed=SEED):
  return np.random.default_rng(seed).standard_normal((n, dim))


def _two_layer(nonlinearity, w1=1.5, b1=0.2, w2=1.3, b2=0.1):
  return nets.serial(nets.Dense(w_std=w1, b_std=b1), nonlinearity(), nets.Dense(w_std=w2, b_std=b2))


# ------------------------------------------------------------------------------------------------------
# Closed forms by hand
# ------------------------------------------------------------------------------------------------------
@pytest.mark.backend_portable
def test_one_hidden_layer_relu_at_sixty_degrees():
  """Two unit inputs at 60 degrees: K0 = [[1, 1/2], [1/2, 1]] (x.x'/d with d = 2)."""
  w1, b1, w2, b2 = 1.5, 0.2, 1.3, 0.1
  x = np.array([[SQRT2, 0.0], [SQRT2 * math.cos(math.pi / 3), SQRT2 * math.sin(math.pi / 3)]])
  k0 = x @ x.T / 2
  np.testing.assert_allclose(k0, [[1, 0.5], [0.5, 1]], atol=1e-15)
  k1 = w1**2 * k0 + b1**2  # Dense; NTK after it equals k1 (input NTK 0)
  q = k1[0, 0]  # both diagonal entries are equal
  theta = math.acos(k1[0, 1] / q)
  relu = np.array([[q / 2, 0.0], [0.0, q / 2]])  # theta = 0 on the diagonal
  relu[0, 1] = relu[1, 0] = q / (2 * math.pi) * (math.sin(theta) + (math.pi - theta) * math.cos(theta))
  kdot = np.array([[0.5, (math.pi - theta) / (2 * math.pi)], [(math.pi - theta) / (2 * math.pi), 0.5]])
  nngp = w2**2 * relu + b2**2
  ntk = nngp + w2**2 * (k1 * kdot)
  got = _two_layer(nets.Relu, w1, b1, w2, b2).kernel(x, get=KERNELS)
  np.testing.assert_allclose(got["nngp"], nngp, rtol=RTOL)
  np.testing.assert_allclose(got["ntk"], ntk, rtol=RTOL)


@pytest.mark.backend_portable
def test_one_hidden_layer_erf_closed_form():
  w1, b1, w2, b2 = 1.1, 0.3, 0.9, 0.2
  x1, x2 = _vectors(3), _vectors(4, seed=1)
  k12 = w1**2 * x1 @ x2.T / x1.shape[1] + b1**2
  k11 = w1**2 * np.sum(x1**2, 1) / x1.shape[1] + b1**2
  k22 = w1**2 * np.sum(x2**2, 1) / x2.shape[1] + b1**2
  a = np.outer(1 + 2 * k11, 1 + 2 * k22)
  nngp = w2**2 * 2 / math.pi * np.arcsin(2 * k12 / np.sqrt(a)) + b2**2
  ntk = nngp + w2**2 * k12 * 4 / math.pi / np.sqrt(a - 4 * k12**2)
  got = _two_layer(nets.Erf, w1, b1, w2, b2).kernel(x1, x2)
  np.testing.assert_allclose(got["nngp"], nngp, rtol=RTOL)
  np.testing.assert_allclose(got["ntk"], ntk, rtol=RTOL)


@pytest.mark.backend_portable
def test_identity_is_the_linear_network():
  x1, x2 = _vectors(3), _vectors(2, seed=1)
  spec = nets.serial(nets.Dense(w_std=1.2, b_std=0.5), nets.Identity(), nets.Dense(w_std=0.7, b_std=0.1))
  k0 = x1 @ x2.T / x1.shape[1]
  k1 = 1.2**2 * k0 + 0.25
  nngp = 0.49 * k1 + 0.01
  got = spec.kernel(x1, x2)
  np.testing.assert_allclose(got["nngp"], nngp, rtol=RTOL)
  np.testing.assert_allclose(got["ntk"], nngp + 0.49 * k1, rtol=RTOL)


# ------------------------------------------------------------------------------------------------------
# CNNs against an independent numpy recursion (full spatial covariances, explicit loops)
# ------------------------------------------------------------------------------------------------------
CNN_CASES = {
    "same_flatten": ([nets.Conv(3, SQRT2, 0.1), nets.Relu(), nets.Conv(3, SQRT2, 0.1), nets.Relu(), nets.Flatten(),
                      nets.Dense(SQRT2, 0.1)],
                     [("conv", 3, 1, "SAME", SQRT2, 0.1), ("relu",), ("conv", 3, 1, "SAME", SQRT2, 0.1), ("relu",),
                      ("flatten",), ("dense", SQRT2, 0.1)]),
    "same_gap": ([nets.Conv(3, SQRT2, 0.1), nets.Relu(), nets.Conv(3, SQRT2, 0.1), nets.Erf(), nets.GlobalAvgPool(),
                  nets.Dense(SQRT2, 0.1)],
                 [("conv", 3, 1, "SAME", SQRT2, 0.1), ("relu",), ("conv", 3, 1, "SAME", SQRT2, 0.1), ("erf",),
                  ("gap",), ("dense", SQRT2, 0.1)]),
    "strided_valid": ([nets.Conv(3, 1.3, 0.2, strides=2), nets.Relu(), nets.Conv(2, 1.1, 0.0, padding="VALID"),
                       nets.Relu(), nets.Flatten(), nets.Dense(1.0, 0.3)],
                      [("conv", 3, 2, "SAME", 1.3, 0.2), ("relu",), ("conv", 2, 1, "VALID", 1.1, 0.0), ("relu",),
                       ("flatten",), ("dense", 1.0, 0.3)]),
    "even_filter_gap": ([nets.Conv(2, 1.4, 0.1), nets.Relu(), nets.Dense(1.2, 0.1), nets.Relu(),
                         nets.GlobalAvgPool(), nets.Dense(1.0, 0.0)],
                        [("conv", 2, 1, "SAME", 1.4, 0.1), ("relu",), ("dense", 1.2, 0.1), ("relu",), ("gap",),
                         ("dense", 1.0, 0.0)]),
    "circular_gap": ([nets.Conv(3, SQRT2, 0.1, padding="CIRCULAR"), nets.Relu(),
                      nets.Conv(3, 1.2, 0.2, padding="circular"), nets.Erf(), nets.GlobalAvgPool(),
                      nets.Dense(SQRT2, 0.1)],
                     [("conv", 3, 1, "CIRCULAR", SQRT2, 0.1), ("relu",), ("conv", 3, 1, "CIRCULAR", 1.2, 0.2),
                      ("erf",), ("gap",), ("dense", SQRT2, 0.1)]),
    "circular_strided_flatten": ([nets.Conv(3, 1.3, 0.2, strides=2, padding="CIRCULAR"), nets.Relu(),
                                  nets.Conv(4, 1.1, 0.0, padding="CIRCULAR"), nets.Relu(), nets.Flatten(),
                                  nets.Dense(1.0, 0.3)],
                                 [("conv", 3, 2, "CIRCULAR", 1.3, 0.2), ("relu",), ("conv", 4, 1, "CIRCULAR", 1.1, 0.0),
                                  ("relu",), ("flatten",), ("dense", 1.0, 0.3)]),
    "head_after_pool": ([nets.Conv(3, SQRT2, 0.1), nets.Relu(), nets.GlobalAvgPool(), nets.Dense(1.5, 0.2),
                         nets.Relu(), nets.Dense(1.0, 0.1)],
                        [("conv", 3, 1, "SAME", SQRT2, 0.1), ("relu",), ("gap",), ("dense", 1.5, 0.2), ("relu",),
                         ("dense", 1.0, 0.1)]),
}


@pytest.mark.backend_portable
@pytest.mark.parametrize("case", sorted(CNN_CASES))
def test_cnn_kernels_match_numpy_recursion(case):
  layers, reference = CNN_CASES[case]
  x1, x2 = _images(3), _images(2, seed=1)
  want_nngp, want_ntk = helpers.numpy_cnn_kernels(x1, x2, reference)
  got = nets.serial(*layers).kernel(x1, x2)
  assert helpers.relative_error(got["nngp"], want_nngp) < RTOL
  assert helpers.relative_error(got["ntk"], want_ntk) < RTOL


@pytest.mark.backend_portable
def test_circular_padding_makes_the_kernel_translation_invariant():
  # Rolling both images by the same shift leaves every kernel of a circular CNN unchanged (not so with zeros).
  x1, x2 = _images(3), _images(2, seed=1)
  rolled1, rolled2 = np.roll(x1, (1, 2), axis=(1, 2)), np.roll(x2, (1, 2), axis=(1, 2))
  for readout in (nets.Flatten(), nets.GlobalAvgPool()):
    for padding, invariant in (("CIRCULAR", True), ("SAME", False)):
      spec = nets.serial(nets.Conv(3, SQRT2, 0.1, padding=padding), nets.Relu(), readout, nets.Dense(SQRT2, 0.1))
      a, b = spec.kernel(x1, x2, get="ntk"), spec.kernel(rolled1, rolled2, get="ntk")
      assert np.allclose(a, b, rtol=1e-12) == invariant, (readout, padding)


# ------------------------------------------------------------------------------------------------------
# Structure
# ------------------------------------------------------------------------------------------------------
def _cnn(readout):
  block = nets.serial(nets.Conv(3, SQRT2, 0.1), nets.Relu())
  return nets.serial(block, block, readout, nets.Dense(SQRT2, 0.1))


STRUCTURE_SPECS = {
    "fc": (lambda: nets.serial(nets.repeat(nets.serial(nets.Dense(SQRT2, 0.1), nets.Relu()), 3),
                               nets.Dense(SQRT2, 0.1)), lambda n: _vectors(n)),
    "cnn_flatten": (lambda: _cnn(nets.Flatten()), lambda n: _images(n, size=4)),
    "cnn_gap": (lambda: _cnn(nets.GlobalAvgPool()), lambda n: _images(n, size=4)),
}


@pytest.mark.backend_portable
@pytest.mark.parametrize("name", sorted(STRUCTURE_SPECS))
def test_symmetric_psd_and_same_as_explicit_copy(name):
  make_spec, make_x = STRUCTURE_SPECS[name]
  x = make_x(6)
  spec = make_spec()
  sym = spec.kernel(x)
  asym = spec.kernel(x, x + 0.0)  # an equal copy is detected as the symmetric case
  for g in KERNELS:
    np.testing.assert_allclose(sym[g], sym[g].T, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(asym[g], sym[g])
    eig = np.linalg.eigvalsh(sym[g])
    assert eig.min() > -1e-12 * eig.max(), f"{g} not PSD: {eig.min()}"


@pytest.mark.backend_portable
@pytest.mark.parametrize("name", sorted(STRUCTURE_SPECS))
def test_blocks_agree_with_the_whole(name):
  """kernel(x1, x2) is the off-diagonal block of kernel([x1; x2]) (no symmetric shortcut changes values)."""
  make_spec, make_x = STRUCTURE_SPECS[name]
  x = make_x(5)
  spec = make_spec()
  whole = spec.kernel(x)
  block = spec.kernel(x[:2], x[2:])
  for g in KERNELS:
    np.testing.assert_allclose(block[g], whole[g][:2, 2:], rtol=1e-13)


@pytest.mark.backend_portable
def test_gap_equals_flatten_on_one_pixel_images():
  x1, x2 = _images(3, size=1), _images(2, size=1, seed=1)
  gap = _cnn(nets.GlobalAvgPool()).kernel(x1, x2)
  flat = _cnn(nets.Flatten()).kernel(x1, x2)
  for g in KERNELS:
    np.testing.assert_allclose(gap[g], flat[g], rtol=1e-13)


@pytest.mark.backend_portable
@pytest.mark.parametrize("readout", [nets.Flatten, nets.GlobalAvgPool])
def test_one_by_one_conv_is_a_per_pixel_dense(readout):
  x1, x2 = _images(3, size=4), _images(2, size=4, seed=1)
  conv = nets.serial(nets.Conv(1, 1.5, 0.2), nets.Relu(), nets.Conv(3, SQRT2, 0.1), nets.Relu(), readout(),
                     nets.Dense(1.0, 0.1))
  dense = nets.serial(nets.Dense(1.5, 0.2), nets.Relu(), nets.Conv(3, SQRT2, 0.1), nets.Relu(), readout(),
                      nets.Dense(1.0, 0.1))
  a, b = conv.kernel(x1, x2), dense.kernel(x1, x2)
  for g in KERNELS:
    np.testing.assert_allclose(a[g], b[g], rtol=1e-13)


@pytest.mark.backend_portable
def test_repeat_equals_serial_of_copies():
  block = nets.serial(nets.Conv(3, SQRT2, 0.1), nets.Relu())
  x = _images(4, size=4)
  repeated = nets.serial(nets.repeat(block, 3), nets.Flatten(), nets.Dense(1.0, 0.0)).kernel(x)
  copies = nets.serial(block, block, block, nets.Flatten(), nets.Dense(1.0, 0.0)).kernel(x)
  for g in KERNELS:
    np.testing.assert_array_equal(repeated[g], copies[g])


@pytest.mark.backend_portable
def test_residual_kernel_formula():
  """x + s * Dense(relu(x)): K = K_x + s^2 (w^2 relu(K_x) + b^2), Theta = Theta_x + s^2 (branch NTK)."""
  s, w, b = 0.5, 1.3, 0.2
  x1, x2 = _vectors(3), _vectors(4, seed=1)
  spec = nets.serial(nets.Dense(1.0, 0.1), nets.residual(nets.serial(nets.Relu(), nets.Dense(w, b)), s))
  d = x1.shape[1]
  k12 = x1 @ x2.T / d + 0.01
  k11, k22 = np.sum(x1**2, 1) / d + 0.01, np.sum(x2**2, 1) / d + 0.01
  relu12, kdot = helpers.relu_map(k11[:, None], k12, k22[None, :])
  branch_nngp = w**2 * relu12 + b**2
  branch_ntk = branch_nngp + w**2 * (k12 * kdot)  # Theta_x = K_x after the first Dense
  got = spec.kernel(x1, x2)
  np.testing.assert_allclose(got["nngp"], k12 + s**2 * branch_nngp, rtol=RTOL)
  np.testing.assert_allclose(got["ntk"], k12 + s**2 * branch_ntk, rtol=RTOL)


@pytest.mark.backend_portable
@pytest.mark.parametrize("name", sorted(STRUCTURE_SPECS))
def test_float32_agrees_with_float64(name):
  make_spec, make_x = STRUCTURE_SPECS[name]
  x = make_x(5)
  spec = make_spec()
  k64 = spec.kernel(x, dtype="float64")
  k32 = spec.kernel(x, dtype="float32")
  for g in KERNELS:
    assert k32[g].dtype == np.float32 and k64[g].dtype == np.float64
    assert helpers.relative_error(k32[g].astype(np.float64), k64[g]) < 1e-5


@pytest.mark.backend_portable
def test_get_selects_kernels():
  spec, x = STRUCTURE_SPECS["cnn_gap"][0](), _images(3, size=4)
  both = spec.kernel(x)
  assert set(both) == {"nngp", "ntk"}
  # Equal to rounding: NNGP-only and NNGP+NTK are different compiled programs, whose readout sums may be ordered
  # differently (1 ulp seen).
  np.testing.assert_allclose(spec.kernel(x, get="nngp"), both["nngp"], rtol=1e-15)
  assert list(spec.kernel(x, get=("ntk",))) == ["ntk"]
  np.testing.assert_allclose(spec.kernel(x, get=("ntk",))["ntk"], both["ntk"], rtol=1e-15)
  with pytest.raises(ValueError, match="get must name"):
    spec.kernel(x, get="ntk_diag")


@pytest.mark.backend_portable
def test_diagonal_of_relu_ntk_is_exact():
  """An input with itself: theta = 0 exactly, so after Dense-Relu-Dense Theta_ii = K_ii + w^2 K1_ii / 2."""
  x = _vectors(4)
  w1, b1, w2, b2 = 1.5, 0.2, 1.3, 0.1
  k1 = w1**2 * np.sum(x**2, 1) / x.shape[1] + b1**2
  nngp = w2**2 * k1 / 2 + b2**2
  got = _two_layer(nets.Relu, w1, b1, w2, b2).kernel(x)
  np.testing.assert_allclose(np.diagonal(got["nngp"]), nngp, rtol=1e-15)
  np.testing.assert_allclose(np.diagonal(got["ntk"]), nngp + w2**2 * k1 / 2, rtol=1e-15)


@pytest.mark.backend_portable
def test_zero_inputs_give_finite_kernels():
  x = _images(3, size=4)
  x[1] = 0.0
  spec = nets.serial(nets.Conv(3, SQRT2, 0.0), nets.Relu(), nets.Conv(3, SQRT2, 0.0), nets.Relu(),
                     nets.GlobalAvgPool(), nets.Dense(1.0, 0.0))
  got = spec.kernel(x)
  for g in KERNELS:
    assert np.all(np.isfinite(got[g]))
    np.testing.assert_array_equal(got[g][1], 0.0)


@pytest.mark.backend_portable
def test_same_shaped_blocks_compile_once():
  spec = STRUCTURE_SPECS["cnn_flatten"][0]()
  x = _images(8, size=4)
  spec.kernel(x[:4], x[4:])
  size = len(_evaluate._CACHE)  # pylint: disable=protected-access
  spec.kernel(x[4:], x[:4])
  spec.kernel(x[:4] + 1.0, x[4:])
  assert len(_evaluate._CACHE) == size  # pylint: disable=protected-access


# ------------------------------------------------------------------------------------------------------
# Errors name the layer
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,shape,match", [
    (nets.serial(nets.Conv(3), nets.Flatten(), nets.Conv(3), nets.Dense()), (4, 4, 3), r"spec\[2\] Conv\(.*image"),
    (nets.serial(nets.Dense(), nets.GlobalAvgPool(), nets.Dense()), (7,), r"spec\[1\] GlobalAvgPool"),
    (nets.serial(nets.Conv(3), nets.Relu(), nets.Dense()), (4, 4, 3), "ends with an image"),
    (nets.serial(nets.Dense(), nets.residual(nets.serial(nets.Relu(), nets.Dense(), nets.GlobalAvgPool()))),
     (4, 4, 3), r"spec\[1\] residual.*keep the shape"),
    (nets.serial(nets.residual(nets.Dense()), nets.Dense()), (7,), r"spec\[0\] residual.*input channels"),
    (nets.serial(nets.Dense(), nets.residual(nets.Relu()), nets.Dense()), (7,), r"residual.*end in a Dense"),
    (nets.serial(nets.Conv(5, padding="VALID"), nets.Flatten(), nets.Dense()), (3, 3, 1), r"Conv\(.*does not fit"),
])
def test_shape_errors_name_the_layer(spec, shape, match):
  x = np.zeros((2,) + shape)
  with pytest.raises(ValueError, match=match):
    spec.kernel(x)


def test_mismatched_inputs_and_bad_dtype():
  spec = _two_layer(nets.Relu)
  with pytest.raises(ValueError, match="same per-example shape"):
    spec.kernel(_vectors(2, dim=3), _vectors(2, dim=4))
  with pytest.raises(ValueError, match="dtype"):
    spec.kernel(_vectors(2), dtype="float16")


@pytest.mark.backend_portable
def test_deep_erf_diagonal_stays_on_the_variance_recursion():
  # Residual Erf net with branch scale 1: correlation 1 repels, so a diagonal entry computed as a pair covariance
  # would drift from the variance by ~1e-8 after 256 blocks (harness/nets/_kernel_math.py `erf`).
  depth = 256
  block = nets.residual(nets.serial(nets.Erf(), nets.Dense(1.0, 0.0)), branch_scale=1.0)
  spec = nets.serial(nets.Dense(1.0, 0.0), nets.repeat(block, depth))
  x = _vectors(3)
  with nets.eager():
    k = spec.kernel(x, get="nngp")
  q = np.sum(x * x, axis=1) / x.shape[1]
  for _ in range(depth):
    q = q + 2 / math.pi * np.arcsin(2 * q / (1 + 2 * q))
  np.testing.assert_allclose(np.diagonal(k), q, rtol=1e-12)


@pytest.mark.backend_portable
@pytest.mark.parametrize("readout", [nets.Flatten(), nets.GlobalAvgPool()], ids=["flatten", "gap"])
def test_input_covariance_products_equal_einsum(monkeypatch, readout):
  """Few-channel images take elementwise products for the input covariance, more channels an einsum: same kernel."""
  helpers.assert_same_kernel_when(monkeypatch, "SMALL_CHANNELS", 0, _cnn(readout), _images(3, size=4),
                           _images(4, size=4, seed=SEED + 1))


PAIRS_LAST_SPECS = {
    "relu_same": lambda: nets.serial(nets.Conv(3, SQRT2, 0.2), nets.Relu(), nets.Conv(3, SQRT2, 0.2), nets.Relu(),
                                     nets.GlobalAvgPool(), nets.Dense(1.2, 0.1)),
    "erf_circular": lambda: nets.serial(nets.Conv(3, 1.3, 0.2, padding="CIRCULAR"), nets.Erf(), nets.GlobalAvgPool(),
                                        nets.Dense(1.1)),
    "strided_valid_residual": lambda: nets.serial(
        nets.Conv(3, 1.4, 0.1, strides=2, padding="VALID"),
        nets.residual(nets.serial(nets.Relu(), nets.Conv(3, 1.2, 0.1), nets.Dense(1.1, 0.2)), 0.7), nets.Relu(),
        nets.GlobalAvgPool(), nets.Dense(1.0, 0.1), nets.Relu(), nets.Dense(1.0)),
}


@pytest.mark.backend_portable
@pytest.mark.parametrize("name", sorted(PAIRS_LAST_SPECS))
@pytest.mark.parametrize("x2_none", [True, False], ids=["symmetric", "two_sets"])
@pytest.mark.parametrize("against", ["pairs_first", "skewed"])
def test_full_pairs_last_equals_the_other_gap_layouts(monkeypatch, name, x2_none, against):
  """Small images take FULL_PAIRS_LAST (pairs innermost) when a step holds >= PAIRS_LAST_MIN_PAIRS pairs: the same
  kernel as FULL with the pairs first (a huge minimum) and as skewed groups (SAME Convs; with SKEWED_GAP and the
  minimum raised). 12 and 9 images: 78 and 108 (+ 21 self) pairs, so every thread's steps hold >= 16."""
  x1, x2 = _images(12, size=6), None if x2_none else _images(9, size=6, seed=SEED + 1)
  spec = PAIRS_LAST_SPECS[name]()
  default = spec.kernel(x1, x2)
  monkeypatch.setattr(_evaluate, "PAIRS_LAST_MIN_PAIRS", 10**9)
  monkeypatch.setattr(_evaluate, "SKEWED_GAP", against == "skewed")
  _evaluate._CACHE.clear()
  other = spec.kernel(x1, x2)
  _evaluate._CACHE.clear()
  for g in KERNELS:
    np.testing.assert_allclose(default[g], other[g], rtol=1e-13)


def test_small_images_take_full_pairs_last():
  """6x6 images, 78 pairs on 2 threads: FULL_PAIRS_LAST steps (the compiled program's key says so)."""
  _evaluate._CACHE.clear()
  PAIRS_LAST_SPECS["relu_same"]().kernel(_images(12, size=6))
  assert [key[-1] for key in _evaluate._CACHE if key[1] == "full"] == [True]
  _evaluate._CACHE.clear()


@pytest.mark.backend_portable
@pytest.mark.parametrize("x2_none", [True, False], ids=["symmetric", "two_sets"])
def test_diagonal_steps_equal_one_step(monkeypatch, x2_none):
  """CNN-Flatten blocks split into several steps of rows inside a call (last step padded) give the one-step kernel."""
  x1, x2 = _images(7, size=4), None if x2_none else _images(5, size=4, seed=SEED + 1)
  two_rows_a_step = 2 * 4 * 4 * (7 if x2_none else 5)
  helpers.assert_same_kernel_when(monkeypatch, "DIAGONAL_STEP_ELEMENTS", two_rows_a_step, _cnn(nets.Flatten()), x1, x2)


@pytest.mark.backend_portable
@pytest.mark.parametrize("x2_none", [True, False], ids=["symmetric", "two_sets"])
def test_host_gram_equals_compiled_gram(monkeypatch, x2_none):
  """Vector inputs: the input Gram by host BLAS (CPU default) and inside the compiled program give one kernel."""
  make_spec, _ = STRUCTURE_SPECS["fc"]
  x1, x2 = _vectors(6), None if x2_none else _vectors(4, seed=SEED + 1)
  helpers.assert_same_kernel_when(monkeypatch, "HOST_GRAM", False, make_spec(), x1, x2)


@pytest.mark.backend_portable
@pytest.mark.parametrize("padding", ["SAME", "CIRCULAR"], ids=["skewed", "full"])
@pytest.mark.parametrize("readout", [nets.Flatten(), nets.GlobalAvgPool()], ids=["flatten", "gap"])
def test_op_by_op_runs_take_large_steps_and_match_compiled(readout, padding):
  """Under nets.eager() the image paths take BLOCK_ELEMENTS steps (each op is a dispatch there); same kernel."""
  spec = nets.serial(nets.Conv(3, 1.5, 0.1, padding=padding), nets.Relu(), nets.Conv(3, 1.5, 0.1, padding=padding),
                     nets.Relu(), readout, nets.Dense(1.0, 0.0))
  x = np.random.default_rng(SEED).standard_normal((5, 4, 4, 3))
  assert _evaluate._large_steps() == _evaluate.backends.current().has_accelerator()
  compiled = spec.kernel(x, get=("nngp", "ntk"))
  with nets.eager():
    assert _evaluate._large_steps()
    eager = spec.kernel(x, get=("nngp", "ntk"))
  for name in ("nngp", "ntk"):
    np.testing.assert_allclose(eager[name], compiled[name], rtol=1e-12, atol=1e-14)


@pytest.mark.backend_portable
@pytest.mark.parametrize("x2_none", [True, False], ids=["symmetric", "two_sets"])
def test_diagonal_borders_by_pad_equal_borders_by_scratch(monkeypatch, x2_none):
  """CNN-Flatten tensors bordered by a pad (shallow nets, the default here) and written into the zero scratch (deep
  nets: PAD_MAX_NONLINEARITIES) give one kernel."""
  x1, x2 = _images(7, size=4), None if x2_none else _images(5, size=4, seed=SEED + 1)
  assert _evaluate._Plan(_cnn(nets.Flatten()), x1.shape[1:]).spatial_nonlinearities <= _evaluate.PAD_MAX_NONLINEARITIES
  helpers.assert_same_kernel_when(monkeypatch, "PAD_MAX_NONLINEARITIES", 0, _cnn(nets.Flatten()), x1, x2)


@pytest.mark.backend_portable
@pytest.mark.parametrize("readout", ["flatten", "gap"])
@pytest.mark.parametrize("x2_none", [True, False], ids=["symmetric", "two_sets"])
def test_a_readout_sums_the_unbordered_outputs_of_the_nonlinearity_before_it(monkeypatch, readout, x2_none):
  """The ReLU right before Flatten (a shallow net, bordered by pad) or GlobalAvgPool (FULL_PAIRS_LAST: 12 and 9
  6x6 images) leaves its outputs unbordered: that path is taken, and the kernel equals the bordered one's."""
  if readout == "flatten":
    spec, x1, x2 = _cnn(nets.Flatten()), _images(7, size=4), None if x2_none else _images(5, size=4, seed=SEED + 1)
  else:
    spec, x1 = PAIRS_LAST_SPECS["relu_same"](), _images(12, size=6)
    x2 = None if x2_none else _images(9, size=6, seed=SEED + 1)
  answers = []
  unbordered = _evaluate._unbordered_output
  def spy(k, layer):
    answers.append(unbordered(k, layer))
    return answers[-1]
  monkeypatch.setattr(_evaluate, "_unbordered_output", spy)
  helpers.assert_same_kernel_when(monkeypatch, "UNBORDERED_READOUT_INPUTS", False, spec, x1, x2)
  assert True in answers


@pytest.mark.backend_portable
@pytest.mark.parametrize("case", ["fc", "flatten", "gap"])
def test_kernels_come_back_as_writable_arrays(case):
  """The kernel arrays are the caller's own (e.g. to add a ridge to the diagonal in place): writable, a read-only
  result (JAX's outputs are read-only views) copied, and one output is not another's view."""
  if case == "fc":
    spec, x = STRUCTURE_SPECS["fc"][0](), _vectors(40)
  else:
    spec, x = _cnn(nets.Flatten() if case == "flatten" else nets.GlobalAvgPool()), _images(5, size=4)
  out = spec.kernel(x, x[:3] + 1.0)
  for name in KERNELS:
    assert out[name].flags.writeable
  before = out["ntk"].copy()
  out["nngp"][...] = 0.0
  np.testing.assert_array_equal(out["ntk"], before)


@pytest.mark.backend_portable
def test_a_gram_larger_than_its_inputs_is_compiled(monkeypatch):
  """Vector blocks whose Gram is larger than their inputs compute it in the compiled program, not on the host."""
  def host_gram(*args):
    raise AssertionError("host Gram used")
  make_spec, _ = STRUCTURE_SPECS["fc"]
  x1, x2 = _vectors(40), _vectors(30, seed=SEED + 1)  # 1200 Gram entries, 490 input entries
  expected = make_spec().kernel(x1, x2, get="nngp")
  monkeypatch.setattr(_evaluate, "_host_gram_kernel", host_gram)
  _evaluate._CACHE.clear()
  np.testing.assert_allclose(make_spec().kernel(x1, x2, get="nngp"), expected, rtol=1e-13)
