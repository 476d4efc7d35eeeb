# visiongate — `make run` starts everything (embedded default), `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test test-unit bench chaos migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its test tools

run: install  ## API + Celery worker + beat + Bria simulator on SQLite and a filesystem broker
	$(VENV)/bin/visiongate run

test: install  ## lint, then the whole suite against real Postgres, Redis and Celery worker processes
	$(VENV)/bin/ruff check .
	scripts/ensure-services.sh
	$(PY) -m pytest -q -p no:cacheprovider

test-unit: install  ## unit tests only (no servers; the bench smoke test needs them and is left out)
	$(PY) -m pytest -q -p no:cacheprovider tests/unit --ignore=tests/unit/test_bench_smoke.py

bench: install  ## benchmarks vs same-run baselines (needs Postgres + Redis; ~50 min); writes bench/results/
	scripts/ensure-services.sh
	$(PY) -c 'import pyinstrument' 2>/dev/null || $(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench.run $(BENCH_ARGS)

chaos: install  ## fault run on private Redis + PostgreSQL (~10-25 min; CHAOS_ARGS="--quick" ~5 min); writes bench/results/chaos.*
	scripts/ensure-services.sh
	$(PY) -m bench.chaos $(CHAOS_ARGS)

migrate: install
	$(VENV)/bin/visiongate migrate

clean:
	rm -rf .visiongate

.PHONY: schemas
schemas: install  ## regenerate every providers/*/schemas_gen.py from spec/ (scripts/gen_schemas.py)
	$(PY) scripts/gen_schemas.py --all
