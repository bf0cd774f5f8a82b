# The two commands of this project:
#   make sweep   run the default sweep (examples/digits-quick.yaml) on local Ray + a local MLflow store
#   make test    run the test suite
# Both create .venv with pip when it is missing and install the project into it.

VENV   ?= .venv
PY     := $(VENV)/bin/python
SPEC   ?= examples/digits-quick.yaml
PYTEST_ARGS ?=
# Ray listens on every interface and `ray stop` kills every Ray process on the machine, so
# anything that starts Ray runs in a loopback-only network and PID namespace when it can.
LOOPBACK := bash .ci/loopback

.PHONY: install sweep test test-fast clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -e '.[dev]'
	touch $@

sweep: install
	$(LOOPBACK) $(VENV)/bin/tgo sweep run $(SPEC)

test: install
	$(LOOPBACK) $(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(LOOPBACK) $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
