# One command for the main job, one for the tests (README quick start).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_HOME := $(CURDIR)/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: demo test install clean bench system-packages

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ecm demo --out out/demo

# the system packages the tests need (ODBC drivers, database clients, poppler): installed as root,
# named otherwise (.ci/system-packages.sh, shared with .ci/run)
system-packages:
	@bash .ci/system-packages.sh

test: $(STAMP) system-packages
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf out .prefect
