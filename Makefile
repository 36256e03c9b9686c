# Two commands do everything (see README.md):
#   make book   build the HTML book, executing every chapter  -> _build/html/index.html
#   make test   lint, unit tests, notebooks under nbval, book build, browser check
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test notebooks format lint browser clean sweep mutate

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Headless Chromium and its driver for the browser test (Debian packages).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

book: $(STAMP)
	$(BIN)/jupyter-book build . --keep-going
	@echo "The book is at _build/html/index.html"

# Regenerate notebooks/*.ipynb from book/*.md (the source of truth).
notebooks: $(STAMP)
	$(BIN)/jupytext --sync book/*.md

# Format the library, the tests and the chapters' code cells (78 columns fit the page's code blocks).
format: $(STAMP)
	$(BIN)/ruff format gmlib tests benchmarks tools
	$(BIN)/jupytext --sync book/*.md
	$(BIN)/ruff format --line-length 78 notebooks
	touch notebooks/*.ipynb && $(BIN)/jupytext --sync notebooks/*.ipynb

lint: $(STAMP)
	$(BIN)/ruff check gmlib tests benchmarks tools
	$(BIN)/ruff format --check gmlib tests benchmarks tools

# One torch thread per process: pytest-xdist runs two workers on two cores; --dist loadfile
# keeps all cells of a notebook on one worker (nbval runs them in one kernel, in order).
test: $(STAMP) browser lint
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile --nbval-lax tests notebooks

# Execute chapters under many seeds, JOBS kernels at a time; prints pass/fail and recorded numbers per
# chapter and writes them to _build/sweep/ (see CONTRIBUTING.md, "Seed sweep"). Example:
#   make sweep SEEDS=10 CHAPTERS="gan vae"      (CHAPTERS empty: every chapter of _toc.yml)
SEEDS      ?= 10
FIRST      ?= 0
CHAPTERS   ?=
THREADS    ?= 1
JOBS       ?= 2
CAPABILITY ?=
sweep: $(STAMP)
	$(BIN)/python tools/sweep.py --seeds $(SEEDS) --first $(FIRST) --threads $(THREADS) --jobs $(JOBS) \
	  $(if $(strip $(CHAPTERS)),--chapters $(CHAPTERS)) $(if $(strip $(CAPABILITY)),--capability $(CAPABILITY))

# Mutation test of gmlib (see CONTRIBUTING.md, "Mutation test"): plants one operator or constant change at a
# time in a private copy of the tree, runs the tests that execute it, prints the kill rate and every survivor.
#   make mutate MODULES="gmlib/divergences.py" JOBS=2
MODULES ?=
mutate: $(STAMP)
	nice -n 19 $(BIN)/python tools/mutate.py --jobs $(JOBS) $(if $(strip $(MODULES)),--modules $(MODULES))

clean:
	rm -rf _build
