"""Writes the theory-provenance entries (closed forms with their derivations) into reference_results/.

    .venv/bin/python tools/add_theory_references.py            # every experiment and tier that has entries here
    .venv/bin/python tools/add_theory_references.py --check    # exit 1 if a file lacks or differs from them

An entry here replaces a measured entry of the same metric (bless never overwrites theory entries afterwards).
Only exact closed forms live here: values a derivation fixes, with tolerances for float64 rounding.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import records, references  # pylint: disable=wrong-import-position

# float64 recursions of at most a few hundred steps: a few hundred ulps at most.
ROUNDING_RTOL = 1e-12
RESIDUAL_FLOW = "harness/theory/residual_flow.py"
HAYOU_YANG = ("Hayou & Yang 2023, Width and Depth Limits Commute in Residual Networks, arXiv 2302.00453 (the residual "
              "net and its limiting covariance flow)")
CHO_SAUL = "Cho & Saul 2009, Kernel Methods for Deep Learning, Eq. 6 (n = 1): E[relu(u)^2] = q / 2"
TIERS = ("smoke", "small")  # the tiers with reference files in the repository


def _kernel_depths(tier: str) -> tuple[int, ...]:
  from benchmarks import commutativity  # pylint: disable=import-outside-toplevel
  return commutativity.EXPERIMENT.tier(tier).make_config().kernel_depths


def _theory(value: float, derivation: str, citation: str, metric: str, rtol: float = ROUNDING_RTOL) -> dict:
  return {"metric": metric, "value": value, "tolerance": {"kind": "relative", "rtol": rtol},
          "provenance": {"kind": "theory", "derivation": derivation, "citation": f"{citation}; {CHO_SAUL}"}}


def commutativity_entries(tier: str) -> list[dict]:
  entries = [_theory(math.exp(0.5), "ReLU: the flow's variance obeys dq/dt = E[relu(u)^2] = q/2, so "
                     f"q(1) = e^(1/2) q(0) ({RESIDUAL_FLOW})", HAYOU_YANG, "limit_var_ratio/relu", rtol=1e-10)]
  scales = {
      "inverse_sqrt_depth": (lambda depth: (1.0 + 0.5 / depth) ** depth,
                             "s = L^(-1/2): each block adds s^2 q/2, so q_L / q_0 = (1 + 1/(2L))^L"),
      "one": (lambda depth: 1.5 ** depth, "s = 1: each block adds q/2, so q_L / q_0 = 1.5^L"),
      "inverse_depth": (lambda depth: (1.0 + 0.5 / depth**2) ** depth,
                        "s = 1/L: each block adds q/(2 L^2), so q_L / q_0 = (1 + 1/(2 L^2))^L"),
  }
  for scale, (ratio, derivation) in scales.items():
    for depth in _kernel_depths(tier):
      entries.append(_theory(ratio(depth), f"ReLU at infinite width, K_l = K_(l-1) + s^2 E[relu relu]: {derivation} "
                             f"for every input ({RESIDUAL_FLOW}: relu_finite_depth_variance)", HAYOU_YANG,
                             f"infinite_width_var_ratio/relu/scale={scale}/L={depth}"))
  return entries


ENTRIES = {("commutativity", tier): lambda tier=tier: commutativity_entries(tier) for tier in TIERS}


def merged(current: dict, entries: list[dict]) -> dict:
  by_metric = {e["metric"]: e for e in current["entries"]}
  for entry in entries:
    by_metric[entry["metric"]] = entry
  return dict(current, entries=[by_metric[k] for k in sorted(by_metric)])


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="only check; exit 1 when a file would change")
  parser.add_argument("--references", default=references.DEFAULT_DIR)
  args = parser.parse_args()
  stale = []
  for (experiment, tier), make in sorted(ENTRIES.items()):
    path = references.reference_path(args.references, experiment, tier)
    current = references.load(args.references, experiment, tier) if os.path.exists(path) else \
        references.empty(experiment, tier)
    new = merged(current, make())
    references.validate(new, path, experiment, tier)
    if new == current:
      continue
    stale.append(path)
    if not args.check:
      records.write_json_atomic(path, new)
      print(f"wrote {path}: {len(make())} theory entries")
  if args.check and stale:
    print("theory entries missing or different in: " + ", ".join(stale))
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
