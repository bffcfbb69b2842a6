"""The comparison behind the hardware report: agreement by the family's rule (rounding at both precisions,
statistical tests between runs), the fingerprint differences named, speed-ups, the precision table."""
import json

import pytest

from harness import references
from harness.report import comparison

ENV = {"cpu_model": "Xeon", "cpu_cores": 2, "keras_backend": "tensorflow", "tf32_enabled": False,
       "versions": {"keras": "3.15.1", "python": "3.11.7"}, "git": {"commit": "abc", "dirty": False}}
WELCH = {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"}


def run(run_id, dtype, metrics, env=None, phases=None, wall=10.0):
  return {"run_id": run_id, "experiment": "unregistered", "tier": "smoke", "dtype": dtype,
          "environment": {**ENV, "float_precision": dtype, **(env or {})}, "claims": [], "phases": phases or {},
          "wall_time_s": wall,
          "metrics": {name: {"values": list(v), "seeds": list(range(len(v))) if len(v) > 1 else [None]}
                      for name, v in metrics.items()}}


@pytest.fixture
def refs(tmp_path):
  blob = references.empty("unregistered", "smoke")
  blob["blessings"] = {"b": {"run_id": "b", "blessed_at": "t", "reason": "r", "commit": None, "dirty": None,
                             "wall_time_s": None, "fingerprint": {"float_precision": "float64"}}}
  prov = {"kind": "measured", "blessing": "b"}
  blob["entries"] = [
      {"metric": "exact", "value": 1.0, "values": [1.0], "seeds": [None], "provenance": prov,
       "tolerance": {"kind": "relative", "rtol": 1e-9}},
      {"metric": "rounded", "value": 1.0, "values": [1.0], "seeds": [None], "provenance": prov,
       "tolerance": {"kind": "relative", "rtol": 1e-9, "rounding": {"ulps": 100.0, "relative": True}}},
      {"metric": "noisy", "value": 0.5, "values": [0.5, 0.51, 0.49, 0.5], "seeds": [0, 1, 2, 3], "provenance": prov,
       "tolerance": dict(WELCH)}]
  (tmp_path / "unregistered").mkdir()
  references.write(str(tmp_path / "unregistered" / "smoke.json"), blob)
  return str(tmp_path)


def test_agreement_uses_the_rule_with_rounding_at_both_precisions(refs):
  a = run("a", "float64", {"exact": [1.0], "rounded": [1.0], "noisy": [0.5, 0.51, 0.49, 0.5]},
          phases={"kernels": 8.0}, wall=10.0)
  b = run("b", "float32", {"exact": [1.0 + 1e-6], "rounded": [1.0 + 1e-6], "noisy": [0.9, 0.91, 0.89, 0.9]},
          env={"tf32_enabled": True}, phases={"kernels": 2.0}, wall=4.0)
  (group,) = comparison.groups([a, b], refs)
  rows = {r.name: r for f in group.families for r in f.rows}
  assert rows["rounded"].agree and rows["rounded"].passes_reference == [True, True]   # 1e-6 < 100 (u32 + u64)
  assert rows["exact"].agree is False and rows["exact"].passes_reference == [True, False]
  assert rows["noisy"].agree is False and "p=" in rows["noisy"].disagreements[0][2]
  assert group.explanations(rows["exact"]) == ["precision float64 -> float32", "TF32 off -> on"]
  speed = {phase: ups for phase, _, ups in comparison.speedups([a, b], a)}
  assert speed["kernels"] == [1.0, 4.0] and speed["total"] == [1.0, 2.5]
  pair, rows32 = comparison.precision_rows(group)
  assert pair == (1, 0)
  by_family = {p.family: p for p in rows32}
  assert by_family["(metrics of no declared family)"].worst_relative == pytest.approx(0.8)
  assert by_family["(metrics of no declared family)"].smallest_p < 0.01


def test_environment_rows_flag_what_differs():
  a, b = run("a", "float64", {}), run("b", "float64", {}, env={"keras_backend": "jax"})
  rows = {label: (values, differs) for label, values, differs in comparison.environment_rows([a, b])}
  assert rows["Keras backend"] == (["tensorflow", "jax"], True) and rows["precision"][1] is False
