# mcp-gateway developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := build

SWIFT        ?= swift
PYTHON3      ?= python3
VENV         ?= .venv
VENV_PY      := $(VENV)/bin/python
REQUIREMENTS := Tests/interop/requirements.txt
VENV_STAMP   := $(VENV)/.installed
CONFIG       ?= config/gateway.yaml
# Interop suite: per-test limit (pytest-timeout) and extra flags.
PYTEST_TIMEOUT ?= 120
PYTEST_ARGS    ?=
# `make fuzz` (docs/fuzzing.md): seconds per target, which targets, extra libFuzzer flags.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= FuzzJSONEnvelope FuzzSessionID FuzzSessionIDMutation FuzzJSONSchema FuzzSSE
FUZZ_ARGS    ?=
FUZZ_SCRATCH := .build-fuzz
# Benchmark knobs, passed through to bench/run.py.
BENCH_ARGS     ?=
BENCH_APT_PKGS := wrk nginx
# Debian packages the test suite runs for real: promtool/prometheus (alert rules, scraping), nginx.
TEST_APT_PKGS  := prometheus nginx
# `make image-test` (deploy/image-test.sh): podman with runc builds and runs the image; mmdebstrap builds
# the debian:bookworm-slim base from Debian's archive (no registry here: ../shared/design/container-testing.md).
IMAGE_APT_PKGS := podman runc mmdebstrap ca-certificates
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: build run venv test test-deps test-swift test-interop bench bench-deps lint clean fuzz image-deps image-test

build:
	$(SWIFT) build

run: build
	.build/debug/mcp-gateway serve --config $(CONFIG)

# The venv is (re)built when requirements.txt changes; the stamp makes it idempotent.
venv: $(VENV_STAMP)

$(VENV_STAMP): $(REQUIREMENTS)
	@test -x $(VENV_PY) || $(PYTHON3) -m venv $(VENV)
	$(VENV_PY) -m pip install --disable-pip-version-check -q -r $(REQUIREMENTS)
	@touch $@

# Build once (including test targets and ExampleServer), run the Swift tests without
# rebuilding, then the interop suite against the real binaries. Both suites always run;
# the target fails if either failed. pytest's exit code 5 (no tests collected) is a failure.
test: venv test-deps
	$(SWIFT) build --build-tests
	@swift_rc=0; $(SWIFT) test --skip-build || swift_rc=$$?; \
	py_rc=0; $(VENV_PY) -m pytest Tests/interop -p no:cacheprovider -ra \
	    --timeout=$(PYTEST_TIMEOUT) $(PYTEST_ARGS) || py_rc=$$?; \
	if [ $$py_rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): failing" >&2; fi; \
	if [ $$swift_rc -ne 0 ]; then echo "make test: swift test failed (exit $$swift_rc)" >&2; fi; \
	if [ $$py_rc -ne 0 ]; then echo "make test: interop tests failed (exit $$py_rc)" >&2; fi; \
	[ $$swift_rc -eq 0 ] && [ $$py_rc -eq 0 ]

# prometheus (which ships /usr/bin/promtool) and nginx come from Debian; `apt-get update` runs only when
# the install needs it. Package scripts must not start the daemons they install (a container has no init
# to run them, and a stray Prometheus would hold :9090): unless the host already has a policy-rc.d, a
# temporary one answers 101 ("action forbidden", invoke-rc.d(8)) for the install and is removed after.
test-deps:
	@if command -v promtool >/dev/null 2>&1 && command -v nginx >/dev/null 2>&1; then exit 0; fi; \
	echo "installing $(TEST_APT_PKGS) from Debian"; \
	policy=/usr/sbin/policy-rc.d; own_policy=; \
	if [ ! -e $$policy ]; then \
	  printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$policy >/dev/null && $(SUDO) chmod 755 $$policy && own_policy=1; \
	fi; \
	rc=0; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(TEST_APT_PKGS) \
	  || { $(SUDO) apt-get update && \
	       $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(TEST_APT_PKGS); } \
	  || rc=$$?; \
	if [ -n "$$own_policy" ]; then $(SUDO) rm -f $$policy; fi; \
	if [ $$rc -ne 0 ]; then echo "test-deps: apt-get install $(TEST_APT_PKGS) failed (exit $$rc)" >&2; exit $$rc; fi; \
	command -v promtool >/dev/null 2>&1 || { echo "test-deps: promtool still missing after installing prometheus" >&2; exit 1; }

# Only the interop suite, against whatever is already in .build/debug.
test-interop: venv
	@rc=0; $(VENV_PY) -m pytest Tests/interop -p no:cacheprovider -ra \
	    --timeout=$(PYTEST_TIMEOUT) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5): failing" >&2; exit 1; fi; \
	exit $$rc

# Each fuzz target under libFuzzer + AddressSanitizer for FUZZ_SECONDS, from its committed seed corpus
# (Tests/fuzz/<target>/corpus, read only) plus a working corpus in $(FUZZ_SCRATCH)/corpus; crash inputs land
# in $(FUZZ_SCRATCH)/artifacts. Stops at the first target that finds a crash.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	    $(SWIFT) build --scratch-path $(FUZZ_SCRATCH) -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING --product $$t; \
	done
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_SCRATCH)/corpus/$$t $(FUZZ_SCRATCH)/artifacts; \
	    echo "== $$t: $(FUZZ_SECONDS)s"; \
	    $(FUZZ_SCRATCH)/debug/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_SCRATCH)/artifacts/$$t- $(FUZZ_ARGS) \
	        $(FUZZ_SCRATCH)/corpus/$$t $$(ls -d Tests/fuzz/$$t/corpus Tests/fuzz/$$t/regressions 2>/dev/null); \
	done

# wrk and nginx come from Debian; `apt-get update` runs only when the install needs it.
bench-deps:
	@if command -v wrk >/dev/null 2>&1 && command -v nginx >/dev/null 2>&1; then exit 0; fi; \
	echo "installing $(BENCH_APT_PKGS) from Debian"; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(BENCH_APT_PKGS) \
	  || { $(SUDO) apt-get update && \
	       $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(BENCH_APT_PKGS); }

bench: venv bench-deps
	$(SWIFT) build -c release
	$(VENV_PY) bench/run.py $(BENCH_ARGS)

# podman, runc and mmdebstrap come from Debian; `apt-get update` runs only when the install needs it.
image-deps:
	@if command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1 \
	    && [ -f /etc/ssl/certs/ca-certificates.crt ]; then exit 0; fi; \
	echo "installing $(IMAGE_APT_PKGS) from Debian"; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(IMAGE_APT_PKGS) \
	  || { $(SUDO) apt-get update && \
	       $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(IMAGE_APT_PKGS); }

# Builds the Dockerfile's runtime stage with podman from static release binaries built on the host
# (.build-static), runs it with the default config, calls a tool through it, checks the non-root user and
# the HEALTHCHECK, stops it with SIGTERM and checks exit code 0. The base image is cached in .build-image/.
image-test: image-deps
	SWIFT=$(SWIFT) PYTHON3=$(PYTHON3) deploy/image-test.sh

lint: venv
	$(VENV_PY) -m py_compile bench/run.py Tests/interop/*.py
	@if [ ! -f .swift-format ]; then echo "no .swift-format config: Swift lint skipped"; \
	elif command -v swift-format >/dev/null 2>&1; then swift-format lint --strict -r Sources Tests; \
	else echo "swift-format not installed: Swift lint skipped"; fi

clean:
	$(SWIFT) package clean
	rm -rf $(VENV) .pytest_cache Tests/interop/__pycache__ bench/__pycache__
