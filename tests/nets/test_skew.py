"""Skewed rows (harness/nets/_skew.py): the row maps, and CNN-GAP kernels through them equal the FULL layout's."""
import math

import numpy as np
import pytest

from harness import nets
from harness.nets import _evaluate
from harness.nets import backends
from tests.nets import helpers
from harness.nets import _skew

SEED = 0
SQRT2 = math.sqrt(2.0)
RTOL = 1e-13  # float64, the same recursion summed in another order


@pytest.fixture(autouse=True)
def _skewed_even_for_small_images(monkeypatch):
  """These images are small enough for FULL_PAIRS_LAST, which would take the place of the skewed layout: off here
  (tests/nets/test_kernels.py checks that layout against both)."""
  monkeypatch.setattr(_evaluate, "PAIRS_LAST_MIN_PAIRS", 10**9)


def _images(n, size=5, width=None, channels=3, seed=SEED):
  return np.random.default_rng(seed).standard_normal((n, size, width or size, channels))


@pytest.mark.parametrize("height,separator", [(1, 1), (4, 1), (5, 2), (6, 0), (32, 1)])
def test_row_maps_cover_every_row_pair_once(height, separator):
  """Valid rows of the H groups hold each (p_h, p'_h) exactly once; each group has `separator` invalid rows, each
  a run between its offset +g rows and its offset g - H rows, and offsets are constant within those runs."""
  rows_a, rows_b, valid = _skew.row_maps(height, separator, np.arange(height))
  assert rows_a.shape == (height, height + separator)
  assert np.all(valid.sum(axis=1) == height)
  seen = np.zeros((height, height), int)
  np.add.at(seen, (rows_a[valid], rows_b[valid]), 1)
  np.testing.assert_array_equal(seen, 1)
  assert np.all(rows_a[~valid] == height) and np.all(rows_b[~valid] == height)
  for g in range(height):
    offset = rows_b[g] - rows_a[g]
    first, gap = height - g, slice(height - g, height - g + separator)
    assert np.all(offset[:first] == g) and np.all(~valid[g, gap])
    assert np.all(offset[first + separator:] == g - height)
    assert np.all(np.diff(rows_a[g][valid[g]]) == 1)  # p_h runs through 0..H-1 in order


def test_padding_group_is_all_invalid():
  rows_a, rows_b, valid = _skew.row_maps(4, 1, np.array([_skew.PADDING_GROUP]))
  assert not valid.any() and np.all(rows_a == 4) and np.all(rows_b == 4)


def test_skewed_covariance_keeps_every_entry_and_the_conv_map():
  """The skewed tensor holds the full covariance's entries once (same sum, same multiset); a 3x3 'SAME' Conv's
  stencil, done on the skewed rows with zero separators, is the skewed layout of the stencil of the full one."""
  rng = np.random.default_rng(SEED)
  h, w = 5, 4
  full = rng.standard_normal((h, w, h, w))
  skewed = _skew.skewed_covariance(full, 1)
  assert skewed.shape == (h, h + 1, w, w)
  np.testing.assert_allclose(skewed.sum(), full.sum(), rtol=1e-13)
  np.testing.assert_allclose(np.sort(skewed[skewed != 0]), np.sort(full.ravel()), rtol=0)

  def full_stencil(k):
    padded = np.pad(k, 1)
    return sum(padded[1 + a:1 + a + h, 1 + b:1 + b + w, 1 + a:1 + a + h, 1 + b:1 + b + w]
               for a in (-1, 0, 1) for b in (-1, 0, 1)) / 9

  def skewed_stencil(t):
    padded = np.pad(t, [(0, 0), (1, 1), (1, 1), (1, 1)])
    rows = t.shape[1]
    return sum(padded[:, 1 + a:1 + a + rows, 1 + b:1 + b + w, 1 + b:1 + b + w]
               for a in (-1, 0, 1) for b in (-1, 0, 1)) / 9

  _, _, valid = _skew.row_maps(h, 1, np.arange(h))
  np.testing.assert_allclose(skewed_stencil(skewed) * valid[:, :, None, None],
                             _skew.skewed_covariance(full_stencil(full), 1), rtol=1e-13, atol=1e-15)


def _conv(size=3, w_std=SQRT2, b_std=0.3):
  return nets.Conv(filter_size=size, w_std=w_std, b_std=b_std)


# GlobalAvgPool specs that take the skewed layout: Relu and Erf, a 5x5 filter (2 separator rows), a residual
# branch, a per-pixel Dense (a bias the separators must not get), a nonlinearity after the pooling (the per-input
# variances then come from the self pairs), no Conv at all.
SPECS = {
    "relu": lambda: nets.serial(_conv(), nets.Relu(), _conv(), nets.Relu(), nets.GlobalAvgPool(), nets.Dense(1.2, 0.1)),
    "erf_5x5": lambda: nets.serial(_conv(5, 1.3), nets.Erf(), _conv(), nets.GlobalAvgPool(), nets.Dense(1.2, 0.1)),
    "residual_dense": lambda: nets.serial(
        _conv(), nets.residual(nets.serial(nets.Relu(), _conv(), nets.Dense(1.1, 0.2)), 0.7), nets.Relu(),
        nets.GlobalAvgPool(), nets.Dense(1.0, 0.1), nets.Relu(), nets.Dense(1.0, 0.0)),
    "no_conv": lambda: nets.serial(nets.Dense(1.3, 0.2), nets.Relu(), nets.GlobalAvgPool(), nets.Dense(1.0, 0.1)),
}


def _assert_skewed_equals_full(monkeypatch, spec, x1, x2):
  """The kernel by skewed rows (the default, under the settings patched so far) equals the FULL layout's."""
  helpers.assert_same_kernel_when(monkeypatch, "SKEWED_GAP", False, spec, x1, x2, rtol=RTOL)


@pytest.mark.backend_portable
@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("x2_none", [True, False], ids=["symmetric", "two_sets"])
def test_skewed_rows_equal_full_layout(monkeypatch, name, x2_none):
  x1 = _images(5, size=6, width=5)
  x2 = None if x2_none else _images(3, size=6, width=5, seed=SEED + 1)
  _assert_skewed_equals_full(monkeypatch, SPECS[name](), x1, x2)


@pytest.mark.backend_portable
@pytest.mark.parametrize("groups_a_step", [1, 3, 7, 35], ids=["one_group", "split_padded", "one_pair", "five_pairs"])
def test_skewed_steps_of_any_size_equal_full_layout(monkeypatch, groups_a_step):
  """7-row images, 12 pairs: a pair split over steps of 1 or 3 groups (3 leaves padding groups in its last
  step), one whole pair a step, or 5 whole pairs a step (units of 5, 5 and a short one that repeats its last
  pair), on 1 and 2 threads: one kernel."""
  h, w = 7, 4
  per_group = _skew.rows(h, 1) * w * w
  x1, x2 = _images(4, size=h, width=w), _images(3, size=h, width=w, seed=SEED + 1)
  spec = SPECS["relu"]()
  monkeypatch.setattr(_evaluate, "SKEW_STEP_ELEMENTS", groups_a_step * per_group)
  for threads in (1, 2):
    monkeypatch.setattr(_evaluate, "host_threads", lambda threads=threads: threads)
    monkeypatch.setattr(_evaluate, "SKEWED_GAP", True)  # undo the previous round's patch
    _assert_skewed_equals_full(monkeypatch, spec, x1, x2)


@pytest.mark.backend_portable
def test_skewed_steps_sized_for_an_accelerator_equal_full_layout(monkeypatch):
  """On an accelerator a step holds many whole pairs (BLOCK_ELEMENTS) on one thread: same kernel."""
  monkeypatch.setattr(backends.current(), "has_accelerator", lambda: True)
  x1, x2 = _images(4, size=6, width=5), _images(3, size=6, width=5, seed=SEED + 1)
  _assert_skewed_equals_full(monkeypatch, SPECS["relu"](), x1, x2)


def test_only_offset_preserving_convs_take_skewed_rows():
  """Strided, 'VALID' or circular Convs move or wrap offsets: those nets keep the FULL layout."""
  shape = (6, 6, 3)
  assert _evaluate._Plan(SPECS["relu"](), shape).separator == 1
  assert _evaluate._Plan(SPECS["erf_5x5"](), shape).separator == 2
  assert _evaluate._Plan(SPECS["no_conv"](), shape).separator == 0
  for conv in (nets.Conv(3, strides=2), nets.Conv(3, padding="VALID"), nets.Conv(3, padding="CIRCULAR")):
    spec = nets.serial(conv, nets.Relu(), nets.GlobalAvgPool(), nets.Dense())
    assert _evaluate._Plan(spec, shape).separator is None
  assert _evaluate._Plan(nets.serial(_conv(), nets.Flatten(), nets.Dense()), shape).separator is None
