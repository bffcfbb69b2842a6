"""Reference schema validation and tolerance rules, with mutation tests (moved outside -> fail)."""
import copy
import json
import math

import pytest

from harness import precision, references
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


# -- rounding: deterministic metrics checked within the rounding of the run's precision -------------------
ROUNDED = {"kind": "relative", "rtol": 1e-12, "rounding": {"ulps": 100.0, "relative": True}}
U32, U64 = precision.unit_roundoff("float32"), precision.unit_roundoff("float64")


@pytest.mark.parametrize("relative, scale", [(True, 40.0), (False, 1.0)])
def test_rounding_allows_float32_rounding_in_float32_runs_only(relative, scale):
  """100 ulps of a float32 run (plus the float64 reference's): a float32 run within it passes, a float64 run
  with the same error fails, and a perturbation of twice the bound fails in float32 too (mutation)."""
  e = entry({"kind": "absolute", "atol": 0.0, "rounding": {"ulps": 100.0, "relative": relative}}, value=40.0)
  bound = 100.0 * (U32 + U64) * scale
  for sign in (1, -1):
    assert references.check(e, metric(40.0 + sign * 0.9 * bound), "float32", "float64")[0]
    assert not references.check(e, metric(40.0 + sign * 0.9 * bound), "float64", "float64")[0]
    assert not references.check(e, metric(40.0 + sign * 2.0 * bound), "float32", "float64")[0]
  assert references.check(e, metric(40.0 + 0.9 * bound), "float32")[0]  # precision of the reference unknown
  assert not references.check(e, metric(40.0 + 0.9 * bound))[0]  # no precision known: the rule's atol alone


def test_rounding_adds_to_the_relative_rule_and_says_so():
  e = entry(ROUNDED, value=-3.0)
  bound = 1e-12 * 3.0 + 100.0 * (U32 + U64) * 3.0
  assert references.check(e, metric(-3.0 - 0.99 * bound), "float32", "float64")[0]
  passed, detail = references.check(e, metric(-3.0 - 1.01 * bound), "float32", "float64")
  assert not passed and " vs " in detail
  assert references.describe_tolerance(ROUNDED) == "±1e-12 rel + 100u rel"


def test_reference_precision_is_the_blessed_runs():
  blob = valid_blob()
  blob["blessings"]["r1"]["fingerprint"] = dict(ENV, float_precision="float32")
  assert references.reference_dtype(blob, blob["entries"][3]) == "float32"
  assert references.reference_dtype(blob, blob["entries"][0]) == "float64"   # theory


def test_bless_and_with_rounding_state_the_familys_bound_afresh():
  current = valid_blob()
  current["entries"][3]["tolerance"] = {"kind": "relative", "rtol": 1e-9, "rounding": {"ulps": 1.0, "relative": True}}
  declared = lambda name, metrics=None: {"kind": "absolute", "atol": 9.0, "rounding": {"ulps": 64.0, "relative": False}}
  new, blessed, _ = references.bless(current, record(), {"r": metric(7.5)}, "x", declared, "2026-03-01")
  assert blessed == ["r"]
  assert new["entries"][3]["tolerance"] == {"kind": "relative", "rtol": 1e-9,   # the rule kept, its rounding derived
                                            "rounding": {"ulps": 64.0, "relative": False}}
  refreshed, unresolved = references.with_rounding(current, declared)
  assert refreshed["entries"][3]["tolerance"]["rounding"] == {"ulps": 64.0, "relative": False} and not unresolved
  assert refreshed["entries"][0] == current["entries"][0]   # theory entries are the theory's to state
  dropped, _ = references.with_rounding(current, lambda name, metrics=None: {"kind": "relative", "rtol": 1e-9})
  assert "rounding" not in dropped["entries"][3]["tolerance"]


def test_missing_metric_fails():
  assert not references.check(entry({"kind": "absolute", "atol": 1}), None)[0]


ENV = {"host": "ci", "git": {"commit": "abc", "dirty": False}, "versions": {"keras": "3"}}
BLESSING = {"run_id": "r1", "commit": "abc", "dirty": False, "blessed_at": "2026-01-01T00:00:00+00:00",
            "reason": "first bless", "wall_time_s": 12.5, "fingerprint": ENV}
WELCH = {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"}


def valid_blob():
  return {"schema": "harness.references", "schema_version": 2, "experiment": "toy", "tier": "smoke",
          "blessings": {"r1": copy.deepcopy(BLESSING)},
          "entries": [entry({"kind": "absolute", "atol": 0.1}),
                      {"metric": "p", "value": 0.3, "tolerance": {"kind": "interval", "low": 0.2, "high": 0.4},
                       "provenance": {"kind": "paper", "arxiv": "1904.11955", "location": "Table 1",
                                      "checked_against_text": True}},
                      {"metric": "q", "value": metric(0.1, 0.2, 0.3).mean, "values": [0.1, 0.2, 0.3],
                       "seeds": [0, 1, 2], "tolerance": dict(WELCH),
                       "provenance": {"kind": "measured", "blessing": "r1"}},
                      {"metric": "r", "value": 7.0, "values": [7.0], "seeds": [None],
                       "tolerance": {"kind": "relative", "rtol": 1e-9},
                       "provenance": {"kind": "measured", "blessing": "r1"}}]}


@pytest.mark.parametrize("mutate,field", [
    (lambda b: b.pop("entries"), "entries"),
    (lambda b: b.update(schema_version=7), "schema_version"),
    (lambda b: b.update(schema_version=1), "schema_version"),
    (lambda b: b["entries"][0]["tolerance"].update(kind="roughly"), "entries[0].tolerance.kind"),
    (lambda b: b["entries"][0]["tolerance"].pop("atol"), "entries[0].tolerance.atol"),
    (lambda b: b["entries"][0]["tolerance"].update(atol=-1), "entries[0].tolerance.atol"),
    (lambda b: b["entries"][0]["provenance"].pop("citation"), "entries[0].provenance.citation"),
    (lambda b: b["entries"][1]["provenance"].update(arxiv="Arora 2019"), "entries[1].provenance.arxiv"),
    (lambda b: b["entries"][1]["provenance"].update(arxiv="1904.11955v2"), "entries[1].provenance.arxiv"),
    (lambda b: b["entries"][1]["provenance"].pop("checked_against_text"),
     "entries[1].provenance.checked_against_text"),
    (lambda b: b["entries"][1]["tolerance"].update(low=1.0), "entries[1].tolerance"),
    (lambda b: b["entries"][1].update(metric="m"), "entries[1].metric"),
    (lambda b: b["entries"][0].update(tolerance=dict(WELCH)), "entries[0].values"),
    (lambda b: b["entries"][0]["provenance"].update(kind="measured"), "entries[0].provenance.blessing"),
    # measured entries point at a stored blessing and carry their raw per-seed values and seeds
    (lambda b: b.pop("blessings"), "blessings"),
    (lambda b: b["entries"][2]["provenance"].update(blessing="r2"), "entries[2].provenance.blessing"),
    (lambda b: b["entries"][2]["provenance"].update(run_id="r1"), "entries[2].provenance"),
    (lambda b: b["entries"][3].pop("values"), "entries[3].values"),
    (lambda b: b["entries"][3].update(seeds=[0, 1]), "entries[3].seeds"),
    (lambda b: b["entries"][2].update(seeds=[0, 1, "2"]), "entries[2].seeds[2]"),
    (lambda b: b["blessings"]["r1"].pop("fingerprint"), "blessings.r1.fingerprint"),
    (lambda b: b["blessings"]["r1"].pop("wall_time_s"), "blessings.r1.wall_time_s"),
    (lambda b: b["blessings"]["r1"].update(wall_time_s=-1), "blessings.r1.wall_time_s"),
    (lambda b: b["blessings"]["r1"].update(phases={"sample": -1.0}), "blessings.r1.phases"),
    (lambda b: b["blessings"]["r1"].update(phases=[3.0]), "blessings.r1.phases"),
    (lambda b: b["blessings"]["r1"].update(reason=" "), "blessings.r1.reason"),
    (lambda b: b["blessings"]["r1"].pop("commit"), "blessings.r1.commit"),
    (lambda b: b["entries"][3]["tolerance"].update(rounding={"ulps": -1, "relative": True}),
     "entries[3].tolerance.rounding.ulps"),
    (lambda b: b["entries"][3]["tolerance"].update(rounding={"ulps": 8}), "entries[3].tolerance.rounding"),
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
  assert "\n" not in message


def test_unknown_blessing_is_valid_with_null_wall_time():
  blob = valid_blob()
  blob["blessings"]["r1"]["wall_time_s"] = None
  blob["blessings"]["unused"] = dict(BLESSING, run_id="r0")  # allowed; bless drops it
  references.validate(blob, "x.json", "toy", "smoke")


def test_load_missing_and_malformed(tmp_path):
  with pytest.raises(ReferenceFileError, match="not found"):
    references.load(str(tmp_path), "toy", "smoke")
  (tmp_path / "toy").mkdir()
  (tmp_path / "toy" / "smoke.json").write_text("{not json")
  with pytest.raises(ReferenceFileError, match="not valid JSON"):
    references.load(str(tmp_path), "toy", "smoke")
  (tmp_path / "toy" / "smoke.json").write_text(json.dumps(valid_blob()))
  assert len(references.load(str(tmp_path), "toy", "smoke")["entries"]) == 4
  with pytest.raises(ReferenceFileError, match="expected 'small'"):
    (tmp_path / "toy" / "small.json").write_text(json.dumps(valid_blob()))
    references.load(str(tmp_path), "toy", "small")


# -- version 1 files ---------------------------------------------------------------------------------
def v1_provenance(values, seeds, run_id="r1", blessed_at="2026-01-01T00:00:00+00:00", reason="first bless"):
  return {"kind": "measured", "run_id": run_id, "commit": "abc", "dirty": False, "fingerprint": ENV,
          "seeds": seeds, "values": values, "blessed_at": blessed_at, "reason": reason}


def v1_blob():
  return {"schema": "harness.references", "schema_version": 1, "experiment": "toy", "tier": "smoke",
          "entries": [entry({"kind": "absolute", "atol": 0.1}),
                      {"metric": "q", "value": 0.2, "values": [0.1, 0.2, 0.3], "tolerance": dict(WELCH),
                       "provenance": v1_provenance([0.1, 0.2, 0.3], [0, 1, 2])},
                      {"metric": "r", "value": 7.0, "tolerance": {"kind": "relative", "rtol": 1e-9},
                       "provenance": v1_provenance([7.0], [None])}]}


def test_upgrade_v1_stores_the_blessing_once_and_keeps_every_number():
  old = v1_blob()
  new = references.upgrade_v1(copy.deepcopy(old))
  references.validate(new, "x.json", "toy", "smoke")
  assert new["schema_version"] == 2
  assert new["blessings"] == {"r1": dict(BLESSING, wall_time_s=None)}
  assert new["entries"][0] == old["entries"][0]  # theory entries as they were
  q, r = new["entries"][1], new["entries"][2]
  assert q == {"metric": "q", "value": 0.2, "values": [0.1, 0.2, 0.3], "seeds": [0, 1, 2],
               "tolerance": WELCH, "provenance": {"kind": "measured", "blessing": "r1"}}
  assert r["values"] == [7.0] and r["seeds"] == [None] and r["provenance"]["blessing"] == "r1"


def test_upgrade_v1_keeps_two_blessings_of_one_run_apart():
  old = v1_blob()
  old["entries"][2]["provenance"] = v1_provenance([7.0], [None], blessed_at="2026-02-01T00:00:00+00:00",
                                                  reason="again")
  new = references.upgrade_v1(old)
  references.validate(new, "x.json", "toy", "smoke")
  ids = [e["provenance"]["blessing"] for e in new["entries"][1:]]
  assert ids == ["r1", "r1@2026-02-01T00:00:00+00:00"]
  assert new["blessings"][ids[1]]["reason"] == "again"


def test_load_upgrades_v1_files_and_names_their_fields(tmp_path):
  (tmp_path / "toy").mkdir()
  path = tmp_path / "toy" / "smoke.json"
  path.write_text(json.dumps(v1_blob(), indent=1))
  assert references.load(str(tmp_path), "toy", "smoke") == references.upgrade_v1(v1_blob())
  broken = v1_blob()
  del broken["entries"][2]["provenance"]["fingerprint"]
  path.write_text(json.dumps(broken))
  with pytest.raises(ReferenceFileError, match=r"smoke.json: entries\[2\].provenance.fingerprint"):
    references.load(str(tmp_path), "toy", "smoke")
  broken = v1_blob()
  broken["entries"][1]["values"] = [0.1, 0.2, 0.4]
  path.write_text(json.dumps(broken))
  with pytest.raises(ReferenceFileError, match=r"entries\[1\].values"):
    references.load(str(tmp_path), "toy", "smoke")


# -- writing ---------------------------------------------------------------------------------------
def test_write_round_trips_with_one_line_per_entry_sorted_by_metric(tmp_path):
  blob = valid_blob()
  blob["entries"].reverse()
  (tmp_path / "toy").mkdir()
  references.write(str(tmp_path / "toy" / "smoke.json"), blob)
  text = (tmp_path / "toy" / "smoke.json").read_text()
  loaded = references.load(str(tmp_path), "toy", "smoke")
  assert loaded == dict(blob, entries=sorted(blob["entries"], key=lambda e: e["metric"]))
  lines = text.splitlines()
  entry_lines = lines[lines.index(' "entries": [') + 1:-2]
  assert [json.loads(line.rstrip(","))["metric"] for line in entry_lines] == ["m", "p", "q", "r"]
  assert entry_lines[2].startswith('  {"metric": "q", "value": 0.20000000000000004, "values": [0.1, 0.2, 0.3], '
                                   '"seeds": [0, 1, 2], "tolerance": {"kind": "statistical", "test": "welch_t", ')
  assert text.count('"fingerprint"') == 1  # once, in the blessing
  assert references.dumps(loaded) == text  # stable: writing what was read changes nothing


# -- blessing --------------------------------------------------------------------------------------
def record(run_id="r2", wall_time_s=3.0):
  return {"run_id": run_id, "wall_time_s": wall_time_s, "phases": {"sample": 2.5}, "environment": dict(ENV, host="other")}


def rules(name):
  return {"q": WELCH, "single": WELCH, "r": {"kind": "relative", "rtol": 1e-9},
          "new": {"kind": "absolute", "atol": 0.5}}.get(name)


def test_bless_keeps_theory_and_paper_entries_and_stores_the_run_once():
  metrics = {"m": metric(5.0), "q": metric(0.1, 0.2, 0.3), "unruled": metric(1.0), "single": metric(2.0),
             "new": metric(4.0, 4.2)}
  new, blessed, skipped = references.bless(valid_blob(), record(), metrics, "second bless", rules, "2026-03-01")
  references.validate(new, "x", "toy", "smoke")
  by_metric = {e["metric"]: e for e in new["entries"]}
  assert by_metric["m"]["value"] == 1.0 and by_metric["m"]["provenance"]["kind"] == "theory"
  assert blessed == ["new", "q"]
  assert by_metric["q"]["values"] == [0.1, 0.2, 0.3] and by_metric["q"]["seeds"] == [0, 1, 2]
  assert by_metric["new"]["values"] == [4.0, 4.2] and by_metric["new"]["seeds"] == [0, 1]  # kept for any rule
  assert by_metric["new"]["provenance"] == {"kind": "measured", "blessing": "r2"}
  assert by_metric["r"]["provenance"]["blessing"] == "r1"  # not in this run: kept, and so is its blessing
  assert new["blessings"]["r2"] == {"run_id": "r2", "commit": "abc", "dirty": False, "blessed_at": "2026-03-01",
                                    "reason": "second bless", "wall_time_s": 3.0, "phases": {"sample": 2.5},
                                    "fingerprint": dict(ENV, host="other")}
  assert set(new["blessings"]) == {"r1", "r2"}
  assert any("unruled" in s for s in skipped) and any("single" in s for s in skipped)


def test_bless_keeps_an_entrys_rule_over_the_declared_one():
  current = valid_blob()
  new, blessed, _ = references.bless(current, record(), {"r": metric(7.5)}, "x",
                                     lambda name: {"kind": "absolute", "atol": 9.0}, "2026-03-01")
  assert blessed == ["r"] and new["entries"][3]["tolerance"] == {"kind": "relative", "rtol": 1e-9}


def test_bless_drops_blessings_no_entry_uses():
  metrics = {"q": metric(0.1, 0.2, 0.3), "r": metric(7.0)}
  new, _, _ = references.bless(valid_blob(), record(wall_time_s=None), metrics, "replace all", rules, "2026-03-01")
  assert list(new["blessings"]) == ["r2"] and new["blessings"]["r2"]["wall_time_s"] is None
  again, _, _ = references.bless(new, record(), metrics, "same run, blessed again", rules, "2026-03-02")
  assert list(again["blessings"]) == ["r2"] and again["blessings"]["r2"]["reason"] == "same run, blessed again"
  partial, _, _ = references.bless(new, record(), {"q": metric(0.1, 0.2, 0.3)}, "third", rules, "2026-03-03")
  assert sorted(partial["blessings"]) == ["r2", "r2@2026-03-03"]  # the old blessing of r2 still holds r
  references.validate(partial, "x", "toy", "smoke")


def test_bless_upgrades_a_v1_blob():
  new, blessed, _ = references.bless(v1_blob(), record(), {"r": metric(7.0)}, "x", rules, "2026-03-01")
  references.validate(new, "x", "toy", "smoke")
  assert blessed == ["r"] and set(new["blessings"]) == {"r1", "r2"}


def test_bless_diff_names_new_changed_and_missing_metrics():
  old = valid_blob()
  metrics = {"q": metric(0.1, 0.2, 0.3), "r": metric(7.7), "new": metric(4.0, 4.5)}
  new, _, _ = references.bless(old, record(), metrics, "re-bless", rules, "2026-03-01")
  lines = references.bless_diff(old, new)
  assert lines == ["+ new 4.25", "~ r 7 -> 7.7 (Δ rel +1.00e-01)", "1 new, 1 changed, 3 unchanged"]
  del metrics["r"]
  new, _, _ = references.bless(old, record(), metrics, "re-bless", rules, "2026-03-01")
  lines = references.bless_diff(old, new, run_metrics=metrics)
  assert lines == ["+ new 4.25", "- r (not in this run; entry kept, from r1)", "1 new, 1 not in run, 3 unchanged"]
  fewer = dict(old, entries=old["entries"][:2])
  assert references.bless_diff(old, fewer) == ["- q (removed)", "- r (removed)", "2 removed, 2 unchanged"]
  retolerated = copy.deepcopy(old)
  retolerated["entries"][3]["tolerance"]["rtol"] = 1e-6
  assert references.bless_diff(old, retolerated)[0] == "~ r 7 -> 7 (tolerance ±1e-09 rel -> ±1e-06 rel)"


def test_with_entries_replaces_by_metric_and_keeps_order():
  blob = {"entries": [{"metric": "b", "value": 1.0}, {"metric": "a", "value": 2.0}]}
  new = references.with_entries(blob, [{"metric": "b", "value": 3.0}, {"metric": "c", "value": 4.0}])
  assert [(e["metric"], e["value"]) for e in new["entries"]] == [("a", 2.0), ("b", 3.0), ("c", 4.0)]
  assert [e["value"] for e in blob["entries"]] == [1.0, 2.0]   # the input is not changed
