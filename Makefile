# One-command setup and the two jobs the README opens with.
#   make demo           set up the legacy environment (idempotent), then `nin compare`: the frameworks side by side
#   make test           set up both environments (idempotent), then the suite less its `slow` tests in each (what CI
#                       runs); fails if either fails
#   make test-slow      the `slow` tests only (the longer data-parallel checks), in both environments
#
# Two locked environments (DESIGN.md, "Environments"):
#   .venv/          legacy:  all four frameworks; MXNet 1.9.1 needs NumPy < 2   (locks/legacy.txt)
#   .venv-current/  current: NumPy 2, today's TensorFlow, JAX, Flax, no MXNet   (locks/current.txt)
PYTHON  ?= python3
LEGACY  := .venv
CURRENT := .venv-current
PIP      = bin/pip install -q --disable-pip-version-check
PYTEST   = bin/python -m pytest -q -p no:cacheprovider

# The extras each environment installs.  The backends it must provide are those these extras install,
# read off the backends' records (`nin backends --extra ...`): in `make test` an unavailable one fails
# its tests instead of skipping.
LEGACY_EXTRAS  := all dev
CURRENT_EXTRAS := current dev
comma := ,
# A skip whose reason is not on the allow-list (tests/conftest.py, ALLOWED_SKIPS) fails the run.
export NIN_STRICT_SKIPS := 1
# `make test` deselects the `slow` tests; `make test-slow` runs only them (MARKS=slow).
MARKS ?= not slow

.PHONY: setup setup-current demo test test-slow test-legacy test-current conformance lint bench clean

$(LEGACY)/.installed: pyproject.toml locks/legacy.txt
	test -x $(LEGACY)/bin/python || $(PYTHON) -m venv $(LEGACY)
	$(LEGACY)/$(PIP) -c locks/legacy.txt -e '.[$(subst $() ,$(comma),$(LEGACY_EXTRAS))]'
	$(LEGACY)/$(PIP) --no-deps -c locks/legacy.txt d2l tf-keras
	touch $@

$(CURRENT)/.installed: pyproject.toml locks/current.txt
	test -x $(CURRENT)/bin/python || $(PYTHON) -m venv $(CURRENT)
	$(CURRENT)/$(PIP) -c locks/current.txt -e '.[$(subst $() ,$(comma),$(CURRENT_EXTRAS))]'
	$(CURRENT)/$(PIP) --no-deps -c locks/current.txt d2l tf-keras
	touch $@

setup: $(LEGACY)/.installed

setup-current: $(CURRENT)/.installed

demo: setup
	$(LEGACY)/bin/nin compare nin_d2l

# Both environments, one after the other, even when the first fails; pytest's exit 5 (no test ran) is a failure.
test: setup setup-current
	@rc=0; \
	$(MAKE) --no-print-directory test-legacy || rc=1; \
	$(MAKE) --no-print-directory test-current || rc=1; \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED in at least one environment (see above)" >&2; fi; \
	exit $$rc

# The suite in one environment: $(1) the venv, $(2) its extras.  No required backend (a failed query) fails the run.
define run_suite
	@echo "== $(1): $$($(1)/bin/python -c 'import numpy; print("numpy", numpy.__version__)')"
	@required=$$($(1)/bin/nin backends --extra $(2)) && [ -n "$$required" ] || \
	{ echo "make test: cannot read the backends $(1) must provide (nin backends --extra $(2))" >&2; exit 1; }; \
	echo "NIN_REQUIRE_BACKENDS=$$required $(1)/$(PYTEST) -m \"$(MARKS)\""; \
	NIN_REQUIRE_BACKENDS=$$required $(1)/$(PYTEST) -m "$(MARKS)"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no test ran" >&2; exit 1; fi; exit $$rc
endef

test-slow:
	@$(MAKE) --no-print-directory test MARKS=slow

test-legacy: setup
	$(call run_suite,$(LEGACY),$(LEGACY_EXTRAS))

test-current: setup-current
	$(call run_suite,$(CURRENT),$(CURRENT_EXTRAS))

conformance: setup
	$(LEGACY)/bin/nin conformance

lint: setup
	$(LEGACY)/bin/ruff check . && $(LEGACY)/bin/ruff format --check .

clean:
	rm -rf $(LEGACY) $(CURRENT) *.egg-info .pytest_cache

# The website (mkdocs.yml), built in the current environment, which installs the docs extra:
#   make docs             site/: the README, docs/, the tutorials executed, each framework's code in tabs
#   make test-site        build it, then open it in headless Chromium (tests/test_site.py)
#   make site-screenshot  build it, then refresh docs/img/site_tabs.png (the README shows it)
# `make test` builds it first, so the current environment's suite tests it (CI: chromium from .ci/run).
CURRENT_EXTRAS += docs
.PHONY: docs test-site site-screenshot

docs: setup-current
	NO_MKDOCS_2_WARNING=1 $(CURRENT)/bin/python -m mkdocs build --strict

test-site: docs
	NIN_REQUIRE_BROWSER=1 $(CURRENT)/$(PYTEST) tests/test_site.py

site-screenshot: docs
	NIN_REQUIRE_BROWSER=1 NIN_SITE_SCREENSHOT=docs/img/site_tabs.png $(CURRENT)/$(PYTEST) tests/test_site.py -k tabs

test: docs
