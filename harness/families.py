"""Metric families: a metric's name template, typed labels, unit, meaning and reference rule, declared once.

An experiment declares each kind of number it records as a `Family`, e.g.

    MC_CORR_ERROR = Family("mc_corr_abs_error/{act}/{inputs}/n={n:d}/L={L:d}", unit="1",
                           description="mean |c_(n,L) - c(1)| over the nets and input pairs", rule=WELCH)

and records through it: `ctx.record(MC_CORR_ERROR, value, seed=s, act="relu", inputs="synthetic", n=16, L=4)`
writes the metric "mc_corr_abs_error/relu/synthetic/n=16/L=4". Labels are typed by their format spec: `{n:d}` an
int, `{c0:g}` a float (formatted as `format(value, "g")`), `{act}` a string (no "/"); `choices` restricts a
label's values. Claims and figures read metrics back through `Table` (`view.of(FAMILY)`), by labels, never by
taking names apart.

`Family.parse(name)` inverts the template (a name that does not round-trip is not the family's), so records
written before families existed are read the same way.
"""
from __future__ import annotations

import dataclasses
import math
import re
import string
from typing import Any, Iterable, Iterator, Mapping, Sequence

from harness.metrics import Metric

_TYPES = {"d": int, "g": float, "": str}
_PATTERNS = {"d": r"-?\d+", "g": r"[-+]?(?:inf|nan|[0-9.]+(?:e[-+]?\d+)?)", "": r"[^/]+?"}


class MissingMetric(Exception):
  """A metric a check needs is not in the run (or not finite): the claim fails, it is not an error."""


class LabelError(ValueError):
  """Labels that do not fit a family's template (unknown, missing, wrong type or not among its choices)."""


@dataclasses.dataclass(frozen=True)
class Label:
  name: str
  kind: type
  spec: str


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
  """One kind of metric. `rule`: the tolerance rule `bless` gives new reference entries of the family
  (harness.references; None: never blessed), restricted to the metrics whose labels match `rule_where`.
  `rounding` (harness.precision.Rounding): for a deterministic family, its rounding error bound, added to an
  absolute or relative rule at the precisions of the run and of the reference (the rule's `rounding`)."""
  template: str
  unit: str = ""
  description: str = ""
  rule: Mapping[str, Any] | None = None
  rule_where: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  choices: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
  rounding: Any = None  # harness.precision.Rounding (not imported here: precision imports numpy only)

  def __post_init__(self):
    labels, pattern = [], ["^"]
    for literal, field, spec, conversion in string.Formatter().parse(self.template):
      pattern.append(re.escape(literal))
      if field is None:
        continue
      if not field.isidentifier() or conversion or spec not in _TYPES:
        raise ValueError(f"family {self.template!r}: field {{{field}:{spec}}} must be a name with spec d, g or none")
      if field in (label.name for label in labels):
        raise ValueError(f"family {self.template!r}: label {field!r} twice")
      labels.append(Label(field, _TYPES[spec], spec))
      pattern.append(f"(?P<{field}>{_PATTERNS[spec]})")
    pattern.append("$")
    object.__setattr__(self, "_labels", tuple(labels))
    object.__setattr__(self, "_regex", re.compile("".join(pattern)))
    if self.rounding is not None and (self.rule is None or self.rule.get("kind") not in ("absolute", "relative")):
      raise ValueError(f"family {self.template!r}: rounding applies to an absolute or relative rule")
    for key in list(self.choices) + list(self.rule_where):
      if key not in self.label_names:
        raise LabelError(f"family {self.template!r} has no label {key!r} (labels: {', '.join(self.label_names)})")

  # -- labels ------------------------------------------------------------------------------------
  @property
  def labels(self) -> tuple[Label, ...]:
    return self._labels  # type: ignore[attr-defined]

  @property
  def label_names(self) -> tuple[str, ...]:
    return tuple(label.name for label in self.labels)

  def check_label_names(self, names: Iterable[str], where: str = "") -> None:
    """LabelError when a label named (by a claim, a selection) is not the family's: raised at load time."""
    unknown = [n for n in names if n not in self.label_names]
    if unknown:
      raise LabelError(f"{where + ': ' if where else ''}family {self.template!r} has no label(s) "
                       f"{', '.join(map(repr, unknown))} (labels: {', '.join(self.label_names) or 'none'})")

  def _coerce(self, label: Label, value: Any) -> Any:
    if label.kind is int:
      if isinstance(value, bool) or not float(value).is_integer():
        raise LabelError(f"family {self.template!r}: label {label.name} must be an integer, got {value!r}")
      value = int(value)
    elif label.kind is float:
      if isinstance(value, bool):
        raise LabelError(f"family {self.template!r}: label {label.name} must be a number, got {value!r}")
      value = float(value)
    else:
      value = str(value)
      if not value or "/" in value:
        raise LabelError(f"family {self.template!r}: label {label.name} must be a non-empty string without '/', "
                         f"got {value!r}")
    allowed = self.choices.get(label.name)
    if allowed is not None and value not in allowed:
      raise LabelError(f"family {self.template!r}: {label.name}={value!r} is not one of {list(allowed)}")
    return value

  def coerce(self, labels: Mapping[str, Any]) -> dict[str, Any]:
    """Labels checked against the template (all present, none extra) and converted to their types."""
    self.check_label_names(labels)
    missing = [n for n in self.label_names if n not in labels]
    if missing:
      raise LabelError(f"family {self.template!r} needs label(s) {', '.join(missing)}")
    return {label.name: self._coerce(label, labels[label.name]) for label in self.labels}

  def name(self, **labels: Any) -> str:
    """The metric name of these labels, e.g. Family("a/n={n:d}").name(n=4) == "a/n=4"."""
    return self.template.format(**self.coerce(labels))

  def parse(self, name: str) -> dict[str, Any] | None:
    """The labels of `name` if the family wrote it, else None."""
    match = self._regex.match(name)
    if match is None:
      return None
    try:
      labels = {label.name: label.kind(match.group(label.name)) for label in self.labels}
      if self.name(**labels) != name:
        return None
    except (LabelError, ValueError):
      return None
    return labels

  def rule_for(self, labels: Mapping[str, Any], view: "MetricView | None" = None) -> Mapping[str, Any] | None:
    """The tolerance rule of the metric with these labels (None where `rule_where` excludes it), with its
    `rounding` evaluated for these labels (and `view`, the run's metrics, where the bound reads them)."""
    rule = self.stated_rule(labels)
    if rule is None or self.rounding is None:
      return rule
    return {**rule, "rounding": self.rounding.rule(labels, view)}

  def stated_rule(self, labels: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The family's rule for these labels as stated, without the rounding bound derived from a run."""
    if self.rule is None or not _matches(labels, self.rule_where):
      return None
    return self.rule

  def at(self, **labels: Any) -> "MetricRef":
    """One metric of the family, named by all its labels (for checks comparing single metrics)."""
    return MetricRef(self, self.coerce(labels))

  def __repr__(self) -> str:
    return f"Family({self.template!r})"


@dataclasses.dataclass(frozen=True)
class MetricRef:
  family: Family
  labels: Mapping[str, Any]

  @property
  def name(self) -> str:
    return self.family.name(**self.labels)


# -- selectors -----------------------------------------------------------------------------------
class Largest:
  """Selector: the label's largest value present (e.g. the deepest net: `select(L=LARGEST)`)."""

  def __repr__(self) -> str:
    return "LARGEST"


class Smallest:
  def __repr__(self) -> str:
    return "SMALLEST"


@dataclasses.dataclass(frozen=True)
class SameAs:
  """Selector: rows whose label equals another label of the same row (the diagonal n = L: `select(L=SameAs("n"))`)."""
  other: str


LARGEST, SMALLEST = Largest(), Smallest()


def _matches(labels: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
  for key, wanted in where.items():
    value = labels[key]
    if isinstance(wanted, SameAs):
      if value != labels[wanted.other]:
        return False
    elif callable(wanted):
      if not wanted(value):
        return False
    elif isinstance(wanted, (tuple, list, frozenset, set)):
      if value not in wanted:
        return False
    elif value != wanted:
      return False
  return True


def check_selection(family: Family, where: Mapping[str, Any], where_from: str = "") -> None:
  """Load-time check of a selection: every key (and SameAs target) is a label of the family."""
  family.check_label_names(list(where) + [w.other for w in where.values() if isinstance(w, SameAs)], where_from)


# -- tables --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Row:
  name: str
  labels: Mapping[str, Any]
  metric: Metric


class Table:
  """The metrics of one family in a run, as rows of (name, labels, metric); selections return tables."""

  def __init__(self, family: Family, rows: Sequence[Row]):
    self.family = family
    self.rows = tuple(sorted(rows, key=lambda r: tuple(_sort_key(r.labels[n]) for n in family.label_names)))

  @classmethod
  def of(cls, family: Family, metrics: Mapping[str, Metric]) -> "Table":
    rows = []
    for name, metric in metrics.items():
      labels = family.parse(name)
      if labels is not None:
        rows.append(Row(name, labels, metric))
    return cls(family, rows)

  def __len__(self) -> int:
    return len(self.rows)

  def __iter__(self) -> Iterator[Row]:
    return iter(self.rows)

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(r.name for r in self.rows)

  def values(self, label: str) -> list[Any]:
    """The distinct values of a label, sorted."""
    self.family.check_label_names([label])
    return sorted({r.labels[label] for r in self.rows}, key=_sort_key)

  def select(self, **where: Any) -> "Table":
    """Rows whose labels match: a value, a tuple of values, a predicate, LARGEST / SMALLEST, SameAs(label)."""
    check_selection(self.family, where)
    resolved = {}
    for key, wanted in where.items():
      if isinstance(wanted, (Largest, Smallest)):
        present = self.values(key)
        if not present:
          return Table(self.family, ())
        wanted = present[-1] if isinstance(wanted, Largest) else present[0]
      resolved[key] = wanted
    return Table(self.family, [r for r in self.rows if _matches(r.labels, resolved)])

  def groups(self, *labels: str) -> dict[tuple, "Table"]:
    """{label values: the table of those rows}, for every combination present, sorted."""
    self.family.check_label_names(labels)
    out: dict[tuple, list[Row]] = {}
    for r in self.rows:
      out.setdefault(tuple(r.labels[n] for n in labels), []).append(r)
    return {key: Table(self.family, rows) for key, rows in sorted(out.items(), key=lambda kv: _sort_key(kv[0]))}

  def series(self, label: str) -> list[tuple[Any, Metric]]:
    """[(value of `label`, metric)] sorted; the other labels must be fixed (one row per value)."""
    self.family.check_label_names([label])
    out = [(r.labels[label], r.metric) for r in self.rows]
    xs = [x for x, _ in out]
    if len(set(xs)) != len(xs):
      free = [n for n in self.family.label_names if n != label and len({r.labels[n] for r in self.rows}) > 1]
      raise ValueError(f"{self.family.template}: series over {label!r} is ambiguous; fix label(s) {free}")
    return sorted(out, key=lambda item: _sort_key(item[0]))

  def grid(self, row: str, column: str) -> dict[tuple[Any, Any], Metric]:
    """{(row value, column value): metric}; the other labels must be fixed."""
    self.family.check_label_names([row, column])
    out = {}
    for r in self.rows:
      key = (r.labels[row], r.labels[column])
      if key in out:
        raise ValueError(f"{self.family.template}: grid ({row}, {column}) is ambiguous at {key}")
      out[key] = r.metric
    return out

  def one(self, **where: Any) -> Metric:
    """The single metric matching `where` (MissingMetric if there is none)."""
    table = self.select(**where) if where else self
    if len(table) != 1:
      if not table.rows:
        raise MissingMetric(f"no metric {self.family.template} with {_describe(where)}")
      raise ValueError(f"{self.family.template}: {len(table)} metrics match {_describe(where)}, expected one")
    return table.rows[0].metric

  def means(self, label: str) -> tuple[list[Any], list[float]]:
    """(x, mean of each metric) of `series(label)`, for figures."""
    points = self.series(label)
    return [x for x, _ in points], [m.mean for _, m in points]


def _describe(where: Mapping[str, Any]) -> str:
  return ", ".join(f"{k}={v!r}" for k, v in where.items()) or "any labels"


def _sort_key(value: Any) -> Any:
  if isinstance(value, tuple):
    return tuple(_sort_key(v) for v in value)
  if isinstance(value, (int, float)):
    return (0, value if not (isinstance(value, float) and math.isnan(value)) else math.inf, "")
  return (1, 0, str(value))


class MetricView:
  """Read access to a run's metrics through declared families; remembers what was read.

  `families`: the families the reader declared (None: any). Reading another family raises at once, so a
  check cannot depend on metrics it did not declare.
  """

  def __init__(self, metrics: Mapping[str, Metric], families: Iterable[Family] | None = None,
               dtype: str | None = None):
    self._metrics = metrics
    self._allowed = None if families is None else tuple(families)
    self.dtype = dtype  # the run's float precision, for precision-aware bounds (None: not known)
    self.read: list[str] = []

  def of(self, family: Family) -> Table:
    if self._allowed is not None and not any(family is f for f in self._allowed):
      raise LabelError(f"family {family.template!r} was not declared by this check")
    table = Table.of(family, self._metrics)
    self.read.extend(n for n in table.names if n not in self.read)
    return table

  def get(self, ref: MetricRef) -> Metric:
    """The metric of `ref`, finite (MissingMetric otherwise)."""
    name = ref.name
    if self._allowed is not None and not any(ref.family is f for f in self._allowed):
      raise LabelError(f"family {ref.family.template!r} was not declared by this check")
    metric = self._metrics.get(name)
    if name not in self.read:
      self.read.append(name)
    if metric is None or not metric.values:
      raise MissingMetric(f"metric {name!r} missing")
    if not metric.finite:
      raise MissingMetric(f"metric {name!r} is not finite: {metric.values}")
    return metric


def family_of(name: str, families: Iterable[Family]) -> tuple[Family, dict[str, Any]] | None:
  """The one family among `families` that wrote `name`, and its labels (ValueError if several do)."""
  found = [(f, labels) for f in families if (labels := f.parse(name)) is not None]
  if len(found) > 1:
    raise ValueError(f"metric {name!r} fits several families: {', '.join(f.template for f, _ in found)}")
  return found[0] if found else None


def records_table(record: Mapping[str, Any], family: Family) -> Table:
  """A family's table over a results record (figures read records, not RunContexts)."""
  from harness.metrics import metrics_from_json  # pylint: disable=import-outside-toplevel
  return Table.of(family, metrics_from_json(record["metrics"]))


__all__ = ["Family", "MetricRef", "Table", "Row", "MetricView", "MissingMetric", "LabelError", "LARGEST", "SMALLEST",
           "SameAs", "family_of", "records_table", "check_selection"]
