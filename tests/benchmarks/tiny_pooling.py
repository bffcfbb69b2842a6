"""`pooling_tiny` for the CLI tests (helpers.tiny_experiment): the real experiment's code, its tests' tiny tier."""
from benchmarks.pooling.experiment import EXPERIMENT
from tests.benchmarks import helpers
from tests.benchmarks.test_pooling import _tiny

EXPERIMENT = helpers.tiny_experiment(EXPERIMENT, _tiny)
