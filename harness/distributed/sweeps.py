"""Points of a sweep ((width, seed), ...) as a distributed job: one element per point, one .npz of results each.

`PointJob(function, points)`: `function(**point)` -> {name: array}, a module-level function (workers import it
by name); points are dicts of labels. `pipeline.run_job(job, folder, options)` runs the points not yet stored;
`pipeline.load(job, folder)` reads them back keyed by the point's label tuple.
"""
from __future__ import annotations

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
    if len(set(self.points)) != len(self.points):
      raise ValueError("points repeat")

  def elements(self):
    return self.points

  def file_name(self, element) -> str:
    return "point_" + "_".join(f"{k}={v}" for k, v in element) + ".npz"

  def compute(self, element) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in self.function(**dict(element)).items()}
