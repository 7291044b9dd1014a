# One-command setup and the two jobs the README opens with.
#   make demo   set up (idempotent), then `nin compare`: the four frameworks side by side
#   make test   set up (idempotent), then the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: setup demo test conformance lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[all,dev]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -c constraints.txt d2l tf-keras
	touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/nin compare nin_d2l

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no test ran" >&2; exit 1; fi; exit $$rc

conformance: setup
	$(BIN)/nin conformance

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
