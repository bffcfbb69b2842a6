"""`width_consistency`: muP networks trained online agree across widths (package docstring)."""
from harness import registry

from benchmarks.width_consistency import config, families, figures, needs, phases
from benchmarks.width_consistency.claims import CLAIMS

EXPERIMENT = registry.Experiment(
    name="width_consistency",
    description="muP nets trained online (MLPs on CIFAR-10, the ResNet-18 family on CIFAR-5m): loss curves, "
                "predictions, pre-activations and sharpness agree across widths",
    papers=(registry.Paper("2305.18411", "Vyas et al. 2023, Feature-Learning Networks Are Consistent Across Widths "
                                         "At Realistic Scales"),
            registry.Paper("2011.14522", "Yang & Hu 2021, Feature Learning in Infinite-Width Neural Networks")),
    families=families.FAMILIES,
    claims=CLAIMS,
    tiers=(config.smoke, config.small, config.paper),
    run=phases.run,
    needs=needs.needs,
    figures=figures.figures,
)
