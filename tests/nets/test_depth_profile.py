"""DepthProfile: kernels at every depth from one pass equal the per-depth specs' kernels to rounding."""
import math

import numpy as np
import pytest

from harness import nets, precision
from harness.nets import _evaluate

pytestmark = pytest.mark.backend_portable
KERNELS = ("nngp", "ntk")
# Relative Frobenius error allowed per block of depth, in unit roundoffs of the dtype: the loop and the unrolled
# net compute the same operations, but XLA may fuse (contract into FMAs, reassociate a stencil's sum) differently
# inside a loop body, a few roundings per entry per layer; the maps are non-expansive in the regimes below.
ULPS_PER_BLOCK = 16


def _images(n, size=4, seed=0):
  return np.random.default_rng(seed).standard_normal((n, size, size, 3))


def _conv_block(act, padding, w_std=1.3, b_std=0.2):
  return nets.serial(nets.Conv(filter_size=3, w_std=w_std, b_std=b_std, padding=padding), act())


PROFILES = {
    "fcn_erf": (nets.DepthProfile(block=nets.serial(nets.Dense(w_std=1.2, b_std=0.2), nets.Erf()),
                                  head=(nets.Flatten(),), readout=(nets.Dense(w_std=1.2, b_std=0.2),)), _images),
    "cnn_flatten_circular_erf": (nets.DepthProfile(block=_conv_block(nets.Erf, "CIRCULAR"),
                                                   readout=(nets.Flatten(), nets.Dense(w_std=1.1))), _images),
    "cnn_gap_circular_erf": (nets.DepthProfile(block=_conv_block(nets.Erf, "CIRCULAR"),
                                               readout=(nets.GlobalAvgPool(), nets.Dense(w_std=1.1, b_std=0.1))),
                             _images),
    "cnn_gap_same_relu": (nets.DepthProfile(block=_conv_block(nets.Relu, "SAME", w_std=math.sqrt(2)),
                                            head=(nets.Conv(filter_size=3, w_std=1.0, padding="SAME"),),
                                            readout=(nets.GlobalAvgPool(), nets.Dense(w_std=1.0))), _images),
    "gap_then_repeated_dense": (nets.DepthProfile(block=nets.serial(nets.Dense(w_std=1.4, b_std=0.1), nets.Relu()),
                                                  head=(nets.Conv(filter_size=3, w_std=1.0), nets.Relu(),
                                                        nets.GlobalAvgPool()),
                                                  readout=(nets.Dense(w_std=1.0),)), _images),
    "residual_vectors": (nets.DepthProfile(block=nets.residual(nets.serial(nets.Relu(), nets.Dense(w_std=1.0)),
                                                               branch_scale=0.3),
                                           head=(nets.Dense(w_std=1.0),)),
                         lambda n, seed=0: np.random.default_rng(seed).standard_normal((n, 9))),
}


def _relative_errors(profile, x1, x2, depths, dtype):
  got = profile.kernel(x1, x2, depths=depths, get=KERNELS, dtype=dtype)
  assert sorted(got) == sorted(set(depths))
  errors = {}
  for depth in set(depths):
    with nets.eager():  # the per-depth specs op by op: compiling each unrolled net would cost more here
      want = profile.spec(depth).kernel(x1, x2, get=KERNELS, dtype=dtype)
    for name in KERNELS:
      if depth == 0 and name == "ntk":
        assert got[depth][name].shape == want[name].shape
      assert got[depth][name].dtype == np.dtype(dtype)
      errors[depth, name] = np.linalg.norm(got[depth][name] - want[name]) / np.linalg.norm(want[name])
  return errors


@pytest.mark.parametrize("case", sorted(PROFILES))
@pytest.mark.parametrize("symmetric", [True, False])
def test_every_depth_equals_its_own_spec(case, symmetric):
  profile, inputs = PROFILES[case]
  x1 = inputs(4)
  x2 = None if symmetric else inputs(3, seed=1)
  depths = (0, 1, 3)
  errors = _relative_errors(profile, x1, x2, depths, "float64")
  bound = {key: ULPS_PER_BLOCK * (key[0] + 2) * precision.UNIT_ROUNDOFF["float64"] for key in errors}
  assert all(errors[key] <= bound[key] for key in errors), errors


def test_float32_and_op_by_op():
  profile, inputs = PROFILES["cnn_gap_circular_erf"]
  x = inputs(4)
  errors = _relative_errors(profile, x, None, (1, 3), "float32")
  assert all(e <= ULPS_PER_BLOCK * (d + 2) * precision.UNIT_ROUNDOFF["float32"] for (d, _), e in errors.items()), errors
  with nets.eager():
    eager = profile.kernel(x, depths=(1, 3), get="ntk", dtype="float64")
  compiled = profile.kernel(x, depths=(1, 3), get="ntk", dtype="float64")
  for depth in (1, 3):
    np.testing.assert_allclose(eager[depth], compiled[depth], rtol=1e-12)


def test_the_block_is_traced_a_fixed_number_of_times_whatever_the_depth(monkeypatch):
  """The blocks run as a loop: tracing a profile to depth 40 applies the block's layers as often as one to depth 4
  (an unrolled net would apply them 40 times)."""
  calls = []
  original = nets.Erf.kernel_fn
  monkeypatch.setattr(nets.Erf, "kernel_fn", lambda self, k: calls.append(1) or original(self, k))
  profile, inputs = PROFILES["cnn_gap_circular_erf"]
  x = inputs(3)
  counts = []
  for depths in ((1, 2, 4), (1, 2, 40)):
    before = len(calls)
    profile.kernel(x, depths=depths, get=KERNELS)
    counts.append(len(calls) - before)
  assert counts[0] == counts[1] <= 2 * 3, counts


def test_bad_profiles_raise():
  x = _images(3, size=6)
  shrinking = nets.DepthProfile(block=nets.Conv(filter_size=3, padding="VALID"),
                                readout=(nets.Flatten(), nets.Dense()))
  with pytest.raises(ValueError, match="keep the shape it returns"):
    shrinking.kernel(x, depths=(1, 2))
  with pytest.raises(ValueError, match="depths must be integers >= 0"):
    PROFILES["fcn_erf"][0].kernel(x, depths=(-1, 2))
  with pytest.raises(ValueError, match="depth must be >= 0"):
    PROFILES["fcn_erf"][0].spec(-1)
  with pytest.raises(ValueError, match="must not contain the readout"):
    nets.DepthProfile(block=nets.serial(nets.Dense(), nets.Flatten()), readout=(nets.Dense(),)).kernel(x, depths=(1,))
  with pytest.raises(ValueError, match="does not end in a vector"):
    nets.DepthProfile(block=nets.serial(nets.Flatten(), nets.Dense()), readout=(nets.Dense(),)).kernel(x, depths=(0, 1))
  with pytest.raises(ValueError, match="no layers"):
    nets.DepthProfile(block=nets.serial(), head=(nets.Flatten(),)).kernel(x, depths=(1,))
