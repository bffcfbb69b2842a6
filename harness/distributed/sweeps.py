"""Points of a sweep ((width, seed), ...) as a distributed job: one element per point, one .npz of results each.

`PointJob(function, points)`: `function(**point)` -> {name: array}, a module-level function or a
`functools.partial` of one over picklable arguments (configs, arrays: pickled once into the job file workers read);
points are dicts of labels. `pipeline.run_job(job, folder, options)` runs the points not yet stored;
`pipeline.load(job, folder)` reads them back keyed by the point's label tuple. `key()` names the function and its
bound arguments, so two sweeps with the same labels (another config, other data) keep apart in one work dir.
"""
from __future__ import annotations

import hashlib
import pickle
import re
from typing import Callable, Mapping, Sequence

import numpy as np

from harness.distributed import pipeline

_SAFE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class PointJob(pipeline.ElementJob):
  def __init__(self, function: Callable[..., Mapping[str, np.ndarray]], points: Sequence[Mapping[str, object]]):
    self.function = function
    self.points = [tuple(sorted(p.items())) for p in points]
    for point in self.points:
      for key, value in point:
        if not (_SAFE.match(str(key)) and _SAFE.match(str(value))):
          raise ValueError(f"point labels must be file-name safe ([A-Za-z0-9_.+-]), got {key}={value!r}")
    if len({self.file_name(p) for p in self.points}) != len(self.points):
      raise ValueError("points repeat (labels that print alike, 1 and '1', count as one)")

  def elements(self):
    return self.points

  def key(self) -> str:
    """sha256 of the pickled function with its bound arguments (first 20 hex digits)."""
    return hashlib.sha256(pickle.dumps(self.function, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()[:20]

  def file_name(self, element) -> str:
    return "point_" + "_".join(f"{k}={v}" for k, v in element) + ".npz"

  def compute(self, element) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in self.function(**dict(element)).items()}
