# The README's two commands: `make demo` (the main job, offline) and `make test` (everything CI runs).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: test lint demo bench clean mutation

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

test: lint
	bash scripts/ensure-services.sh
	bash scripts/ensure-browser.sh
	$(VENV)/bin/pytest -q

demo: $(STAMP)
	$(VENV)/bin/falkit generate "a lighthouse at dusk, oil painting" --emulator

bench: $(STAMP)
	for f in bench/*.py; do $(PY) $$f || exit 1; done

# mutmut over the code that keeps jobs from being lost or paid for twice, one worker, in copies
# of the tree under /tmp (never here); `make mutation GROUPS="engine store"` runs some groups.
# Figures and survivors: docs/testing.md; this run's: build/mutation/report.md.
mutation: $(STAMP)
	$(PY) scripts/mutation.py $(GROUPS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
