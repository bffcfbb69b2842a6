"""Raw per-seed metric values, the unit every claim, reference and report works on."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np


@dataclasses.dataclass
class Metric:
  """All values of one metric in a run: one per seed, or a single value for deterministic metrics.

  `seeds[i]` is the seed that produced `values[i]` (None for a deterministic metric).
  """
  values: list[float]
  seeds: list[int | None]
  unit: str = ""

  def __post_init__(self):
    if len(self.values) != len(self.seeds):
      raise ValueError("values and seeds differ in length")

  @property
  def n(self) -> int:
    return len(self.values)

  @property
  def mean(self) -> float:
    return float(np.mean(self.values)) if self.values else math.nan

  @property
  def std(self) -> float:
    """Sample standard deviation across seeds (0 for a single value)."""
    return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

  @property
  def finite(self) -> bool:
    return bool(self.values) and all(math.isfinite(v) for v in self.values)

  def to_json(self) -> dict[str, Any]:
    return {"values": [_json_float(v) for v in self.values], "seeds": list(self.seeds), "unit": self.unit,
            "mean": _json_float(self.mean), "std": _json_float(self.std), "n": self.n}

  @classmethod
  def from_json(cls, blob: Mapping[str, Any]) -> "Metric":
    return cls(values=[_from_json_float(v) for v in blob["values"]], seeds=list(blob["seeds"]),
               unit=blob.get("unit", ""))


def _json_float(value: float) -> float | str:
  """JSON has no NaN or inf: store them as strings so a record stays valid JSON and still fails checks."""
  value = float(value)
  return value if math.isfinite(value) else repr(value)


def _from_json_float(value: float | str) -> float:
  return float(value)


def metrics_from_json(blob: Mapping[str, Any]) -> dict[str, Metric]:
  return {name: Metric.from_json(entry) for name, entry in blob.items()}


def format_value(value: float, spread: float | None = None) -> str:
  if not math.isfinite(value):
    return str(value)
  text = f"{value:.6g}"
  if spread:
    text += f" ± {spread:.2g}"
  return text


def summarize(values: Sequence[float]) -> str:
  array = np.asarray(values, dtype=np.float64)
  if array.size == 1:
    return format_value(float(array[0]))
  return format_value(float(array.mean()), float(array.std(ddof=1))) + f" (n={array.size})"
