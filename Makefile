# Fresh machine: `make demo` and `make test` each build .venv from requirements.lock first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip's configured local mirrors print one harmless line per package they do not carry.
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: demo test lock clean bench gpu-wheels docs docs-pictures

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.lock 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | $(QUIET_PIP)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/synthwatch --store synthwatch-store demo --data demo-data

test: $(STAMP)
	$(BIN)/python -m pytest

# The docs site: pictures retaken where a browser is here, references generated from the parser and
# the service's schema, then a strict build (a broken link or anchor fails) into site/.
docs: $(STAMP)
	if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then $(MAKE) docs-pictures; \
	else echo "make docs: no chromium and chromedriver here: docs/images/ keeps the committed pictures"; fi
	$(BIN)/python -m synthwatch.reference docs/reference
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The docs' pictures are the browser test's screenshots of the real page and a real report
# (needs chromium and chromedriver, as the test does); commit what changes under docs/images/.
docs-pictures: $(STAMP)
	SYNTHWATCH_DOCS_PICTURES=docs/images $(BIN)/python -m pytest -q tests/synthwatch/test_web_page.py \
	  -k "upload_shows or report_opens"
	test -s docs/images/analyst-page.png && test -s docs/images/report-roc.png

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py

# Wheels the bare GPU machine lacks (Python 3.12, x86_64), at the locked versions, and synthwatch's
# own wheel, into .whl/ for benchmarks/gpu_check.sh; everything else it needs is already there.
GPU_WHEELS := duckdb faiss-cpu
gpu-wheels: $(STAMP)
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	  -d .whl $(foreach name,$(GPU_WHEELS),$$(grep -i '^$(name)==' requirements.lock))
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w .whl . 2>&1 | $(QUIET_PIP)

# Re-resolve requirements.in into requirements.lock in a scratch environment.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q -r requirements.in 2>&1 | $(QUIET_PIP)
	{ echo "# Exact versions for Python 3.11 on Linux x86_64, resolved from requirements.in by \`make lock\`."; \
	  echo "# torch/torchvision are the CUDA builds pip picks here; they also run on CPU."; \
	  .venv-lock/bin/python -m pip freeze; } > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) synthwatch-store demo-data
