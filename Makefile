# Every target creates .venv itself if it is missing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test install clean-venv study-store model

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

# The study issues' real texts (../shared) crawled from the emulator into data/study.db, with the study's titles.
study-store: install
	rm -f data/study.db data/study.db-wal data/study.db-shm
	$(BIN)/python -m pipeline.study_store data/study.db

# Regenerate the shipped model (pipeline/classify/shipped) from labels/study.csv and the study store.
# Needed when the codebook, the study labels, the embedding model or the classifier change.
model: study-store
	$(BIN)/mine train labels/study.csv --db data/study.db --out pipeline/classify/shipped --name study-full

clean-venv:
	rm -rf $(VENV)
