# Every target creates .venv itself if it is missing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test install clean-venv

$(BIN)/mine: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	# torch first, pinned, so no later resolution can pull a CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(BIN)/mine

install: $(BIN)/mine

demo: install
	$(BIN)/python -m pipeline.demo

test: install
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
