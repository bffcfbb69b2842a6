"""`pooling`: CNN-GAP vs CNN-Flatten vs FCN on CIFAR-10, kernels and finite nets; NTK depth theory (package docstring)."""
from harness import registry

from benchmarks.pooling import config, families, figures, needs, phases
from benchmarks.pooling.claims import CLAIMS

EXPERIMENT = registry.Experiment(
    name="pooling",
    description="CIFAR-10 CNN-GAP vs CNN-Flatten vs FCN, kernels and finite nets; NTK depth theory",
    papers=(registry.Paper("1912.13053", "Xiao, Pennington & Schoenholz 2020, Disentangling Trainability and "
                                         "Generalization in Deep Neural Networks"),
            registry.Paper("1904.11955", "Arora et al. 2019, On Exact Computation with an Infinitely Wide Neural Net"),
            registry.Paper("1611.01232", "Schoenholz et al. 2017, Deep Information Propagation")),
    families=families.FAMILIES,
    claims=CLAIMS,
    tiers=(config.smoke, config.small, config.paper),
    run=phases.run,
    needs=needs.needs,
    figures=figures.figures,
)
