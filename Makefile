# The README's two commands: `make demo` and `make test`. Both create the
# virtual environment on first use (Python 3.10: lava-nc supports no other).

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# python3.10 from PATH; under pyenv, the newest installed 3.10 even when the
# global version is another one.
PYTHON310 ?= $(shell \
	if python3.10 -c '' >/dev/null 2>&1; then echo python3.10; \
	elif command -v pyenv >/dev/null 2>&1 && v=$$(pyenv latest 3.10 2>/dev/null); then \
		echo "$$(pyenv root)/versions/$$v/bin/python3.10"; \
	fi)

.PHONY: demo test lint format clean

demo: $(STAMP)
	$(BIN)/fpttsim run quickstart

test: $(STAMP)
	$(BIN)/ruff format --check fpttsim tests docs
	$(BIN)/ruff check fpttsim tests docs
	$(BIN)/python -m pytest -q

format: $(STAMP)
	$(BIN)/ruff format fpttsim tests docs
	$(BIN)/ruff check --fix fpttsim tests docs

$(STAMP): pyproject.toml
	@test -n "$(PYTHON310)" || { echo "error: Python 3.10 not found (lava-nc needs it); install it or pass PYTHON310=/path/to/python3.10" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON310) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lava,test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
	find fpttsim tests -name __pycache__ -type d -prune -exec rm -rf {} +
