"""`commutativity`: width and depth limits commute in residual nets with 1/sqrt(depth) branches (package docstring)."""
from harness import registry

from benchmarks.commutativity import config, families, figures, needs, phases, theory
from benchmarks.commutativity.claims import CLAIMS

EXPERIMENT = registry.Experiment(
    name="commutativity",
    description="residual nets with 1/sqrt(L) branches: width and depth limits of the kernel commute",
    papers=(registry.Paper("2302.00453", "Hayou & Yang 2023, Width and Depth Limits Commute in Residual Networks"),
            registry.Paper("2310.01683", "Hayou 2023, Commutative Width and Depth Scaling in Deep Neural Networks")),
    families=families.FAMILIES,
    claims=CLAIMS,
    tiers=(config.smoke, config.small, config.paper),
    run=phases.run,
    needs=needs.needs,
    figures=figures.figures,
    theory_references=theory.reference_entries,
)
