# mcp-policy: build, test and run. Every target installs what it needs.
#
#   make build   the proxy-wasm module: target/wasm32-wasip1/release/mcp_policy.wasm
#   make test    lint, unit tests (cargo), policy tests, end-to-end tests through real Envoy
#   make run     Envoy on 127.0.0.1:10000 with the module, the default policy and a demo MCP server

SHELL       := /bin/bash
PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
WASM        := target/wasm32-wasip1/release/mcp_policy.wasm
WASM_TARGET := wasm32-wasip1
# End-to-end tests: each is bounded (pytest-timeout) and every server they
# start listens on 127.0.0.1 only.
PYTEST_ARGS ?= -q

.PHONY: all setup build test unit lint e2e run envoy-config check-envoy-config clean

all: build

# --- setup -------------------------------------------------------------------

$(VENV)/.installed: requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

.wasm-target:
	rustup target add $(WASM_TARGET)
	rustup component add clippy
	touch $@

setup: $(VENV)/.installed .wasm-target

# --- build -------------------------------------------------------------------

build: .wasm-target
	cargo build --release --target $(WASM_TARGET) --lib
	@ls -l $(WASM) | awk '{print "built " $$9 " (" $$5 " bytes)"}'

# --- tests -------------------------------------------------------------------

unit:
	cargo test

# Clippy on the module as built for wasm32: warnings are errors, and panics,
# unwrap/expect and unchecked indexing are denied outside tests (src/lib.rs).
lint: .wasm-target
	cargo clippy --lib --target $(WASM_TARGET) -- -D warnings
	cargo clippy --all-targets -- -D warnings

check-envoy-config: setup
	$(PY) tools/envoy_config.py --policy-dir policies --wasm $(WASM) \
		--listen-port 10000 --upstream-port 8000 --admin-port 9901 --check envoy/envoy.yaml

e2e: setup build
	$(PY) -m pytest tests $(PYTEST_ARGS)

test: setup build lint unit e2e

# --- run ---------------------------------------------------------------------

run: setup build
	$(PY) tools/run_demo.py

# Regenerate envoy/envoy.yaml from policies/ (the file is checked in so it can
# be used as is; `make test` fails if it is stale).
envoy-config: setup
	$(PY) tools/envoy_config.py --policy-dir policies --wasm $(WASM) \
		--listen-port 10000 --upstream-port 8000 --admin-port 9901 -o envoy/envoy.yaml

clean:
	cargo clean
	rm -rf $(VENV) .wasm-target
