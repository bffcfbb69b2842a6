"""The tiny tier of `pooling`'s tests as an experiment of its own (`pooling_tiny`), for the CLI tests:
registered through HARNESS_EXPERIMENT_MODULES, it runs the real experiment's code in a subprocess in seconds."""
import dataclasses

from benchmarks.pooling.experiment import EXPERIMENT as _REAL
from tests.benchmarks.test_pooling import _tiny

EXPERIMENT = dataclasses.replace(_REAL, name="pooling_tiny", tiers=(_tiny,))
