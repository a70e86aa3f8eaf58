# Two entry points do all the set-up on a fresh machine with nothing but Python:
#   make demo   - create .venv, install wmw-link, run the whole pipeline on synthetic data
#   make test   - create .venv, install wmw-link with dev extras, lint and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PEOPLE ?= 50000
OUT    ?= demo-out

.PHONY: setup demo test adversarial lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/wmw-link demo --people $(PEOPLE) --out $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

test: $(STAMP) lint
	$(BIN)/pytest -q

# Tampering, bad inputs and audit edits (issue 12): under a minute.
ADVERSARIAL := tests/adversarial tests/unit/test_seal.py tests/unit/test_audit.py \
	tests/unit/test_tokenise_checks.py tests/unit/test_tokenise_messages.py \
	tests/unit/test_linkage_verify.py
adversarial: $(STAMP)
	$(BIN)/pytest -q -p no:xdist $(ADVERSARIAL)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
