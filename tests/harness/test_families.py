"""Metric families: names from typed labels and back, tables over labels, recording through a run context."""
import pytest

from harness.context import RunContext
from harness.families import LARGEST, SMALLEST, Family, LabelError, MissingMetric, SameAs, Table, family_of
from harness.metrics import Metric

MC = Family("mc_corr_abs_error/{act}/{inputs}/n={n:d}/L={L:d}", unit="1", choices={"act": ("relu", "erf")})
CORR = Family("limit_corr/{act}/c0={c0:g}")


def test_names_are_todays_strings_and_parse_back():
  name = MC.name(act="relu", inputs="synthetic", n=16, L=4)
  assert name == "mc_corr_abs_error/relu/synthetic/n=16/L=4"
  assert MC.parse(name) == {"act": "relu", "inputs": "synthetic", "n": 16, "L": 4}
  assert CORR.name(act="relu", c0=0.5) == "limit_corr/relu/c0=0.5" and CORR.name(act="relu", c0=0.0) == "limit_corr/relu/c0=0"
  assert CORR.parse("limit_corr/relu/c0=0.25") == {"act": "relu", "c0": 0.25}
  # not the family's: another template, a label out of its choices, a non-canonical number
  assert MC.parse("mc_var_rel_error/relu/synthetic/n=16/L=4") is None
  assert MC.parse("mc_corr_abs_error/tanh/synthetic/n=16/L=4") is None
  assert MC.parse("mc_corr_abs_error/relu/synthetic/n=016/L=4") is None
  assert MC.parse("mc_corr_abs_error/relu/a/b/n=16/L=4") is None


def test_labels_are_checked_when_a_name_is_made():
  with pytest.raises(LabelError, match="needs label"):
    MC.name(act="relu", n=16, L=4)
  with pytest.raises(LabelError, match="no label"):
    MC.name(act="relu", inputs="synthetic", n=16, L=4, width=3)
  with pytest.raises(LabelError, match="integer"):
    MC.name(act="relu", inputs="synthetic", n=16.5, L=4)
  with pytest.raises(LabelError, match="not one of"):
    MC.name(act="tanh", inputs="synthetic", n=16, L=4)
  with pytest.raises(LabelError, match="without '/'"):
    MC.name(act="relu", inputs="a/b", n=16, L=4)
  with pytest.raises(ValueError, match="spec"):
    Family("x/{n:.3f}")


def _metrics():
  out = {}
  for act in ("relu", "erf"):
    for n in (16, 64):
      for depth in (4, 16, 64):
        out[MC.name(act=act, inputs="synthetic", n=n, L=depth)] = Metric([n * 1000.0 + depth], [None])
  out["something/else"] = Metric([1.0], [None])
  return out


def test_table_select_series_grid_groups():
  table = Table.of(MC, _metrics())
  assert len(table) == 12 and table.values("act") == ["erf", "relu"] and table.values("n") == [16, 64]
  relu = table.select(act="relu")
  assert [x for x, _ in relu.select(n=16).series("L")] == [4, 16, 64]
  assert [m.mean for _, m in relu.select(L=LARGEST).series("n")] == [16064.0, 64064.0]
  assert [m.mean for _, m in relu.select(L=SMALLEST).series("n")] == [16004.0, 64004.0]
  assert [x for x, _ in relu.select(L=SameAs("n")).series("n")] == [16, 64]
  assert relu.grid("n", "L")[64, 16].mean == 64016.0
  assert set(table.groups("act", "n")) == {("erf", 16), ("erf", 64), ("relu", 16), ("relu", 64)}
  assert relu.select(n=(16, 64), L=lambda depth: depth > 10).one(n=64, L=64).mean == 64064.0
  with pytest.raises(ValueError, match="ambiguous"):
    relu.series("L")   # n is not fixed
  with pytest.raises(MissingMetric):
    relu.one(n=32, L=4)
  with pytest.raises(LabelError):
    table.select(width=16)


def test_family_of_finds_the_one_family():
  assert family_of("limit_corr/relu/c0=0.5", (MC, CORR))[0] is CORR
  assert family_of("nothing/here", (MC, CORR)) is None
  with pytest.raises(ValueError, match="several"):
    family_of("limit_corr/relu/c0=0.5", (CORR, Family("limit_corr/{act}/{rest}")))


def test_run_context_records_through_declared_families():
  ctx = RunContext(seeds=(0, 1), dtype="float64", verbose=False, families=(MC,))
  assert ctx.record(MC, 0.5, seed=0, act="relu", inputs="synthetic", n=16, L=4) == "mc_corr_abs_error/relu/synthetic/n=16/L=4"
  ctx.record(MC, 0.6, seed=1, act="relu", inputs="synthetic", n=16, L=4)
  assert ctx.metrics["mc_corr_abs_error/relu/synthetic/n=16/L=4"].values == [0.5, 0.6]
  with pytest.raises(ValueError, match="already has a value"):
    ctx.record(MC, 0.6, seed=1, act="relu", inputs="synthetic", n=16, L=4)
  with pytest.raises(LabelError, match="not declared"):
    ctx.record(CORR, 0.1, act="relu", c0=0.5)
  assert ctx.view(MC).of(MC).one(n=16).values == [0.5, 0.6]
