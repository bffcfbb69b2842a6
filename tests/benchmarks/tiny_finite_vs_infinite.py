"""The tiny tier of `finite_vs_infinite`'s tests as an experiment of its own (`finite_vs_infinite_tiny`), for the CLI tests:
registered through HARNESS_EXPERIMENT_MODULES, it runs the real experiment's code in a subprocess in seconds."""
import dataclasses

from benchmarks.finite_vs_infinite.experiment import EXPERIMENT as _REAL
from tests.benchmarks.test_finite_vs_infinite import _tiny

EXPERIMENT = dataclasses.replace(_REAL, name="finite_vs_infinite_tiny", tiers=(_tiny,))
