# Entry points for people and CI. See README.md.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
TF     ?= cpu          # cpu -> tensorflow-cpu; gpu -> tensorflow[and-cuda]
# tensorflow: TF (and JAX for test-jax); jax: JAX only, no TensorFlow (accelerator hosts). Default: jax for a venv
# made by `make setup BACKEND=jax` (it has no TensorFlow), else tensorflow.
BACKEND ?= $(if $(and $(wildcard $(VENV)/bin/python),$(if $(wildcard $(VENV)/lib/python*/site-packages/tensorflow),,no-tf)),jax,tensorflow)
SHARED_DATA ?= $(abspath ../shared/data)
# Offline mirrors of CIFAR-10 when ../shared/data is there (see README); otherwise TFDS as configured.
ifneq ($(wildcard $(SHARED_DATA)/cifar10-exact-subset),)
HARNESS_MIRRORS ?= cifar10=$(SHARED_DATA)/cifar10-exact-subset,cifar10_jpeg=$(SHARED_DATA)/cifar10-jpeg
export HARNESS_MIRRORS
endif
export TF_CPP_MIN_LOG_LEVEL ?= 2
EXPERIMENT ?= all
RUN ?=
RUNS ?=
BASELINE ?=
TIER ?=
DTYPE ?=
PYTEST_ARGS ?=

.PHONY: setup setup-browser test test-jax smoke small paper plan compare report bench bench-compare bench-storage bench-smoke list clean

ifeq ($(strip $(BACKEND)),jax)
# JAX-only: Keras on JAX, data from mirrors (TFDS downloads need TensorFlow and say so); `make test` runs the
# backend-portable tests. On a GPU host add JAX's CUDA wheels afterwards (pip install "jax[cuda12]==<pinned jax>").
export KERAS_BACKEND := jax
EXTRAS := jax,test,dist
CHECK := import importlib.util, keras, jax; assert importlib.util.find_spec('tensorflow') is None, 'TensorFlow is installed in $(VENV): make setup BACKEND=jax needs a fresh VENV'; print('keras', keras.__version__, 'jax', jax.__version__, '(no TensorFlow)')
else
EXTRAS := $(strip $(TF)),test,jax,dist
CHECK := import tensorflow as tf, keras, tensorflow_datasets, jax; print('tf', tf.__version__, 'keras', keras.__version__, 'jax', jax.__version__)
endif

setup:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -c "$(CHECK)"
	@command -v chromium >/dev/null 2>&1 || echo "note: no Chromium here, so the report's browser test will skip; to run it: sudo apt-get install chromium"

# Debian's Chromium, for the report's headless-browser test (tests/harness/test_report_browser.py skips without it).
setup-browser:
	@command -v chromium >/dev/null 2>&1 || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: could not install Chromium (needs root and apt-get): sudo apt-get install chromium"
	@command -v chromium >/dev/null 2>&1 && echo "chromium: $$(command -v chromium)" || true

test:
ifeq ($(strip $(BACKEND)),jax)
	$(MAKE) test-jax
else
	$(PY) -m pytest -n auto -m "not serial" $(PYTEST_ARGS)
	$(PY) -m pytest -m serial $(PYTEST_ARGS) || test $$? = 5   # 5: PYTEST_ARGS selected no serial test
	$(MAKE) test-jax
endif

# The backend-portable tests (kernels, online trainer, sharpness) again under the Keras JAX backend (CPU).
test-jax:
	KERAS_BACKEND=jax $(PY) -m pytest -n auto -m backend_portable tests/nets tests/test_online.py tests/test_sharpness.py $(PYTEST_ARGS)

list:
	$(PY) -m harness list

# What a tier would need here (data, hardware, memory, runtime), without running: make plan EXPERIMENT=pooling TIER=paper
plan:
	$(PY) -m harness plan --experiment=$(EXPERIMENT) $(if $(TIER),--tier=$(TIER))

# Every experiment's smoke tier, then compare with reference_results/; nonzero exit on any failure.
# In the other precision: make smoke DTYPE=float32 (references hold; deterministic ones within float32 rounding).
smoke:
	$(PY) -m harness run --experiment=$(EXPERIMENT) --tier=smoke --compare $(if $(DTYPE),--dtype=$(DTYPE))

small:
	$(PY) -m harness run --experiment=$(EXPERIMENT) --tier=small --compare

paper:
	@test "$(EXPERIMENT)" != all || (echo "usage: make paper EXPERIMENT=name" >&2; exit 2)
	$(PY) -m harness run --experiment=$(EXPERIMENT) --tier=paper --compare

compare:
	@test -n "$(RUN)" || (echo "usage: make compare RUN=runs/<run-id>" >&2; exit 2)
	$(PY) -m harness compare $(RUN)

# A hardware comparison: make report RUNS='runs/a runs/b runs/c' [BASELINE=runs/a] (speed-ups relative to BASELINE)
report:
	@test -n "$(RUNS)" || (echo "usage: make report RUNS='runs/<id> [runs/<id> ...]' [BASELINE=runs/<id>]" >&2; exit 2)
	$(PY) -m harness report $(RUNS) $(if $(BASELINE),--baseline=$(BASELINE))

# Speed benchmarks (pytest-benchmark); not part of `make test`. `make bench` saves this machine's baseline,
# `make bench-compare` reruns and fails on a benchmark > 10% slower (median of the rounds pooled over BENCH_PASSES
# interleaved passes; harness/benchcompare.py). Storage: pytest-benchmark's, under .benchmarks/<machine class>.
BENCH_PASSES ?= 3
BENCH_STORAGE ?= .benchmarks/$(shell $(PY) -m harness.benchcompare machine-id 2>/dev/null)
BENCH_PYTEST = $(PY) -m pytest benchmarks/perf --benchmark-enable -p no:xdist -s --benchmark-save-data \
	--benchmark-storage=file://$(BENCH_STORAGE)
bench: bench-storage
	for pass in $$(seq $(BENCH_PASSES)); do $(BENCH_PYTEST) --benchmark-save=baseline-pass$$pass $(PYTEST_ARGS) || exit 1; done

bench-compare: bench-storage
	for pass in $$(seq $(BENCH_PASSES)); do $(BENCH_PYTEST) --benchmark-save=current-pass$$pass $(PYTEST_ARGS) || exit 1; done
	$(PY) -m harness.benchcompare compare --storage=$(BENCH_STORAGE)

bench-storage:
	@test "$(BENCH_STORAGE)" != ".benchmarks/" || { echo "error: could not name this machine for its benchmark baseline (python -m harness.benchcompare machine-id failed); set BENCH_STORAGE" >&2; exit 2; }

# CI: every benchmark runs once on its smallest input, untimed (a smoke of the benchmark code, not a measurement).
bench-smoke:
	HARNESS_BENCH_SMOKE=1 $(PY) -m pytest benchmarks/perf -p no:xdist $(PYTEST_ARGS)

clean:
	rm -rf runs reports .benchmarks
