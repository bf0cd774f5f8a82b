# The two commands of this project:
#   make sweep   run the default sweep (examples/digits-quick.yaml) on local Ray + a local MLflow store
#   make test    run the test suite
#   make lock    refresh requirements.lock to today's releases and run make test on it
# Both create .venv with pip when it is missing and install into it exactly the versions of
# requirements.lock (what the tests passed with), then the project itself.

VENV   ?= .venv
PY     := $(VENV)/bin/python
SPEC   ?= examples/digits-quick.yaml
PYTEST_ARGS ?=
# Ray listens on every interface and `ray stop` kills every Ray process on the machine, so
# anything that starts Ray runs in a loopback-only network and PID namespace when it can.
LOOPBACK := bash .ci/loopback
LOCK     := requirements.lock
PIP_PIN  := $(shell sed -n 's/^\# pip==//p' $(LOCK))

.PHONY: install sweep test test-fast lock clean

install: $(VENV)/.installed

# The lock holds every package of the runtime and the dev and server extras (torch <= 2.14.1 included);
# --no-deps keeps pip from resolving anything anew for the project itself, and pip check
# fails the install when the lock and pyproject.toml disagree.
$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet "pip==$(PIP_PIN)"
	$(PY) -m pip install --progress-bar off -r $(LOCK)
	$(PY) -m pip install --progress-bar off --no-deps -e .
	$(PY) -m pip check
	touch $@

sweep: install
	$(LOOPBACK) $(VENV)/bin/tgo sweep run $(SPEC)

test: install
	$(LOOPBACK) $(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(LOOPBACK) $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lock:
	bash .ci/refresh-lock

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
