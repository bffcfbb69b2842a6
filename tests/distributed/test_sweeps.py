"""Sweep points as Beam elements: each point's result equals the function called directly; a rerun skips them."""
import numpy as np
import pytest

from harness import distributed
from tests.distributed import helpers

IN_PROCESS = "--runner=DirectRunner --direct_num_workers=1 --direct_running_mode=in_memory"
POINTS = [{"width": w, "seed": s} for w in (8, 32) for s in (0, 1)]


def test_points_run_once_and_read_back(tmp_path):
  job = distributed.PointJob(helpers.readout_moments, POINTS[:3])
  summary = distributed.run_job(job, str(tmp_path), IN_PROCESS)
  assert (summary.total, summary.computed) == (3, 3)
  job = distributed.PointJob(helpers.readout_moments, POINTS)
  summary = distributed.run_job(job, str(tmp_path), IN_PROCESS)
  assert (summary.total, summary.stored_before, summary.computed) == (4, 3, 1)
  results = distributed.load(job, str(tmp_path))
  for point in POINTS:
    stored = results[tuple(sorted(point.items()))]["nngp"]
    np.testing.assert_allclose(stored, helpers.readout_moments(**point)["nngp"], rtol=1e-12)
  # different seeds are different nets
  assert not np.allclose(results[(("seed", 0), ("width", 8))]["nngp"], results[(("seed", 1), ("width", 8))]["nngp"])


def test_point_labels_must_name_files():
  with pytest.raises(ValueError, match="file-name safe"):
    distributed.PointJob(helpers.readout_moments, [{"width": "8/16", "seed": 0}])
  with pytest.raises(ValueError, match="repeat"):
    distributed.PointJob(helpers.readout_moments, [POINTS[0], dict(POINTS[0])])
