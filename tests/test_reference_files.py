"""The repository's reference_results: every file validates, every smoke tier has one, theory entries are current."""
import json
import os
import subprocess
import sys

import pytest

from harness import references, registry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _files():
  root = references.DEFAULT_DIR
  for experiment in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    for name in sorted(os.listdir(os.path.join(root, experiment))):
      if name.endswith(".json"):
        yield experiment, name[:-len(".json")]


@pytest.mark.parametrize("experiment, tier", list(_files()))
def test_reference_file_validates_and_names_a_registered_tier(experiment, tier):
  blob = references.load(references.DEFAULT_DIR, experiment, tier)  # validates; names the file and field
  registry.get(experiment).tier(tier)
  assert blob["entries"], "a reference file without entries guards nothing"
  for entry in blob["entries"]:
    if entry["provenance"]["kind"] == "measured":
      assert entry["values"] and blob["blessings"][entry["provenance"]["blessing"]]["reason"].strip()


@pytest.mark.parametrize("experiment, tier", list(_files()))
def test_reference_file_is_version_2_as_bless_writes_it(experiment, tier):
  # the layout that keeps a re-bless reviewable: blessings once, one entry a line, sorted by metric
  path = references.reference_path(references.DEFAULT_DIR, experiment, tier)
  with open(path, encoding="utf-8") as f:
    text = f.read()
  blob = references.load(references.DEFAULT_DIR, experiment, tier)
  assert json.loads(text)["schema_version"] == references.SCHEMA_VERSION
  assert references.dumps(blob) == text, f"{path} is not laid out as references.write writes it"
  assert references.prune_blessings(blob) == blob, f"{path} holds blessings no entry uses"


@pytest.mark.parametrize("experiment", sorted(registry.load_all()))
def test_every_smoke_tier_has_references(experiment):
  # `make smoke` compares every experiment's smoke tier; a missing file would make it exit 2
  assert os.path.exists(references.reference_path(references.DEFAULT_DIR, experiment, "smoke"))


def test_theory_entries_are_current():
  result = subprocess.run([sys.executable, "-m", "harness", "theory", "--check"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stdout + result.stderr
  assert "up to date" in result.stdout


@pytest.mark.parametrize("experiment, tier", list(_files()))
def test_every_reference_entry_is_a_metric_of_a_declared_family(experiment, tier):
  """Each entry's name is written by exactly one family; measured entries carry that family's rule, with the
  rounding bound the family derives from the blessed values (`python -m harness theory` writes it)."""
  exp = registry.get(experiment)
  blob = references.load(references.DEFAULT_DIR, experiment, tier)
  refreshed, unresolved = references.with_rounding(blob, exp.rule_for)
  assert not unresolved, f"rounding bounds the file cannot derive (re-bless a run): {unresolved}"
  assert refreshed == blob, "rounding bounds differ from the families': run python -m harness theory"
  for entry in blob["entries"]:
    found = exp.family_of(entry["metric"])
    assert found is not None, entry["metric"]
    if entry["provenance"]["kind"] == "measured":
      family, labels = found
      declared = family.stated_rule(labels)
      assert {k: v for k, v in entry["tolerance"].items() if k != "rounding"} == declared, entry["metric"]
