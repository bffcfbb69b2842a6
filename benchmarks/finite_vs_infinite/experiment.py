"""`finite_vs_infinite`: the gap between finite- and infinite-width nets closes at a definite rate (package docstring)."""
from harness import registry

from benchmarks.finite_vs_infinite import config, families, figures, needs, phases
from benchmarks.finite_vs_infinite.claims import CLAIMS

EXPERIMENT = registry.Experiment(
    name="finite_vs_infinite",
    description="finite-width nets against their NNGP/NTK: rates in width, centering, ensembles, optimisation, precision",
    papers=(registry.Paper("2008.08675", "Andreassen & Dyer 2020, Asymptotics of Wide Convolutional Neural Networks"),
            registry.Paper("2007.15801", "Lee et al. 2020, Finite Versus Infinite Neural Networks: an Empirical Study"),
            registry.Paper("1902.06720", "Lee et al. 2019, Wide Neural Networks of Any Depth Evolve as Linear Models "
                                         "Under Gradient Descent"),
            registry.Paper("1909.11304", "Dyer & Gur-Ari 2019, Asymptotics of Wide Networks from Feynman Diagrams")),
    families=families.FAMILIES,
    claims=CLAIMS,
    tiers=(config.smoke, config.small, config.paper),
    run=phases.run,
    needs=needs.needs,
    figures=figures.figures,
)
