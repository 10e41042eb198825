# pz-platform: `make demo` runs the main job on the embedded default, `make test` runs every suite.
# Both create .venv and install the pinned requirements first when needed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VAR := var

.PHONY: install demo test lint clean up down

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "pz-platform needs Python 3.11+ (found: $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.txt
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	@# LIneA's pzserver client declares pandas<3 but works with the pandas 3 pinned above; the tests use it.
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps pzserver==0.3.7
	touch $(STAMP)

demo: $(STAMP)
	scripts/airflow/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pzlib dags plugins tests

clean:
	rm -rf $(VAR)

# The Airflow services of the embedded default, in the background (state in $(VAR)/airflow); see scripts/airflow/.
# PROFILE=production: the production profile instead (profiles/production.env; state in $(VAR)/airflow-production).
PROFILE ?=
up: $(STAMP)
	PZ_PROFILE=$(PROFILE) scripts/airflow/up.sh

down:
	PZ_PROFILE=$(PROFILE) scripts/airflow/down.sh
