"""Reference schema validation and tolerance rules, with mutation tests (moved outside -> fail)."""
import copy
import json
import math

import pytest

from harness import references
from harness.errors import ReferenceFileError
from harness.metrics import Metric

THEORY = {"kind": "theory", "derivation": "Var of N(0,1) is 1", "citation": "any textbook"}
REF_VALUES = [0.50, 0.52, 0.48, 0.51, 0.49]


def entry(tolerance, value=1.0, **extra):
  return {"metric": "m", "value": value, "tolerance": dict(tolerance), "provenance": dict(THEORY), **extra}


def metric(*values):
  return Metric(values=list(values), seeds=list(range(len(values))))


@pytest.mark.parametrize("inside,outside", [(1.09, 1.11), (0.91, 0.89)])
def test_absolute(inside, outside):
  e = entry({"kind": "absolute", "atol": 0.1})
  assert references.check(e, metric(inside))[0]
  assert not references.check(e, metric(outside))[0]


def test_relative():
  e = entry({"kind": "relative", "rtol": 0.01}, value=-200.0)
  assert references.check(e, metric(-201.9))[0]
  assert not references.check(e, metric(-202.1))[0]


def test_interval_uses_mean():
  e = entry({"kind": "interval", "low": 0.2, "high": 0.4})
  assert references.check(e, metric(0.1, 0.5))[0]  # mean 0.3
  assert not references.check(e, metric(0.41))[0]


def test_statistical_welch_mutation():
  e = entry({"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"},
            value=0.5, values=REF_VALUES)
  assert references.check(e, metric(0.51, 0.49, 0.50, 0.53))[0]
  assert not references.check(e, metric(0.71, 0.69, 0.70, 0.73))[0]
  assert not references.check(e, metric(0.31, 0.29, 0.30, 0.33))[0]


def test_statistical_one_sided():
  e = entry({"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "less"},
            value=0.5, values=REF_VALUES)
  assert references.check(e, metric(0.71, 0.69, 0.70, 0.73))[0]  # better than reference is fine
  assert not references.check(e, metric(0.31, 0.29, 0.30, 0.33))[0]


def test_statistical_k_pooled_se():
  # reference mean 0.5, s^2 = 0.00025 (n=5); measured [0.6, 0.6]: s=0 -> se = sqrt(0.00025/5) = 0.00707
  e = entry({"kind": "statistical", "test": "k_pooled_se", "k": 3}, value=0.5, values=REF_VALUES)
  se = math.sqrt(0.00025 / 5)
  assert references.check(e, metric(0.5 + 2.9 * se, 0.5 + 2.9 * se))[0]
  assert not references.check(e, metric(0.5 + 3.1 * se, 0.5 + 3.1 * se))[0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("tolerance", [
    {"kind": "absolute", "atol": 1e9}, {"kind": "relative", "rtol": 1e9},
    {"kind": "interval", "low": -1e300, "high": 1e300},
    {"kind": "statistical", "test": "welch_t", "alpha": 1e-9, "alternative": "two-sided"},
    {"kind": "statistical", "test": "k_pooled_se", "k": 1e9}])
def test_non_finite_always_fails(bad, tolerance):
  e = entry(tolerance, values=REF_VALUES)
  assert not references.check(e, metric(0.5, bad))[0]


def test_missing_metric_fails():
  assert not references.check(entry({"kind": "absolute", "atol": 1}), None)[0]


def valid_blob():
  return {"schema": "harness.references", "schema_version": 1, "experiment": "toy", "tier": "smoke",
          "entries": [entry({"kind": "absolute", "atol": 0.1}),
                      {"metric": "p", "value": 0.3, "tolerance": {"kind": "interval", "low": 0.2, "high": 0.4},
                       "provenance": {"kind": "paper", "arxiv": "1904.11955", "location": "Table 1",
                                      "checked_against_text": True}}]}


@pytest.mark.parametrize("mutate,field", [
    (lambda b: b.pop("entries"), "entries"),
    (lambda b: b.update(schema_version=7), "schema_version"),
    (lambda b: b["entries"][0]["tolerance"].update(kind="roughly"), "entries[0].tolerance.kind"),
    (lambda b: b["entries"][0]["tolerance"].pop("atol"), "entries[0].tolerance.atol"),
    (lambda b: b["entries"][0]["tolerance"].update(atol=-1), "entries[0].tolerance.atol"),
    (lambda b: b["entries"][0]["provenance"].pop("citation"), "entries[0].provenance.citation"),
    (lambda b: b["entries"][1]["provenance"].update(arxiv="Arora 2019"), "entries[1].provenance.arxiv"),
    (lambda b: b["entries"][1]["provenance"].pop("checked_against_text"),
     "entries[1].provenance.checked_against_text"),
    (lambda b: b["entries"][1]["tolerance"].update(low=1.0), "entries[1].tolerance"),
    (lambda b: b["entries"][1].update(metric="m"), "entries[1].metric"),
    (lambda b: b["entries"][0].update(tolerance={"kind": "statistical", "test": "welch_t", "alpha": 0.05,
                                                "alternative": "two-sided"}), "entries[0].values"),
    (lambda b: b["entries"][0]["provenance"].update(kind="measured"), "entries[0].provenance"),
])
def test_validation_names_file_and_field(mutate, field, tmp_path):
  blob = valid_blob()
  references.validate(copy.deepcopy(blob), "x.json", "toy", "smoke")
  mutate(blob)
  with pytest.raises(ReferenceFileError) as info:
    references.validate(blob, "reference_results/toy/smoke.json", "toy", "smoke")
  message = str(info.value)
  assert message.startswith("reference_results/toy/smoke.json: ")
  assert field in message


def test_load_missing_and_malformed(tmp_path):
  with pytest.raises(ReferenceFileError, match="not found"):
    references.load(str(tmp_path), "toy", "smoke")
  (tmp_path / "toy").mkdir()
  (tmp_path / "toy" / "smoke.json").write_text("{not json")
  with pytest.raises(ReferenceFileError, match="not valid JSON"):
    references.load(str(tmp_path), "toy", "smoke")
  (tmp_path / "toy" / "smoke.json").write_text(json.dumps(valid_blob()))
  assert len(references.load(str(tmp_path), "toy", "smoke")["entries"]) == 2
  with pytest.raises(ReferenceFileError, match="expected 'small'"):
    (tmp_path / "toy" / "small.json").write_text(json.dumps(valid_blob()))
    references.load(str(tmp_path), "toy", "small")


def test_bless_keeps_theory_and_paper_entries():
  record = {"run_id": "r1", "environment": {"git": {"commit": "abc", "dirty": False}}}
  metrics = {"m": metric(5.0), "q": metric(0.1, 0.2, 0.3), "unruled": metric(1.0), "single": metric(2.0)}
  rules = {"q": {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"},
           "single": {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"}}
  new, blessed, skipped = references.bless(valid_blob(), record, metrics, "first bless", rules, "2026-01-01")
  references.validate(new, "x", "toy", "smoke")
  by_metric = {e["metric"]: e for e in new["entries"]}
  assert by_metric["m"]["value"] == 1.0 and by_metric["m"]["provenance"]["kind"] == "theory"
  assert blessed == ["q"]
  assert by_metric["q"]["values"] == [0.1, 0.2, 0.3]
  assert by_metric["q"]["provenance"]["seeds"] == [0, 1, 2]
  assert any("unruled" in s for s in skipped) and any("single" in s for s in skipped)
