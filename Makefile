# Thin wrapper over CMake. Every target installs missing Debian packages first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CONFIG ?= config/rend.json

.PHONY: all deps build run test test-sanitize package bench bench-connections soak fuzz clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	./$(BUILD_DIR)/supervisor/rend --config $(CONFIG)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 600 -j $(JOBS)

# rend_<version>_amd64.deb in $(BUILD_DIR) (deploy/debian), checked with lintian by make test.
package: build
	cd $(BUILD_DIR) && cpack -G DEB

bench: build
	@./scripts/install-deps.sh --bench
	./bench/run.sh $(BUILD_DIR)

# Connection scale: memory per idle connection beside memcached, and 30,000 connections served.
bench-connections: build
	python3 ./bench/connections.py $(BUILD_DIR)

# ASan + UBSan build (build-sanitize/, asserts on) and its tests; SANITIZE_SCOPE=unit runs only the
# unit tests and fuzz replays (what .ci/run adds to make test), all adds the process tests.
SANITIZE_DIR ?= build-sanitize
SANITIZE_SCOPE ?= all
SANITIZE_UNIT_TARGETS = unit_tests l2_unit_tests loadgen_unit_tests fuzz_text_request_replay \
  fuzz_binary_request_replay fuzz_backend_response_replay fuzz_chunk_format_replay fuzz_l2_value_replay \
  fuzz_config_replay fuzz_control_request_replay
test-sanitize: deps
	@cmake -S . -B $(SANITIZE_DIR) -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Debug -DREND_SANITIZE=ON >/dev/null
	@cmake --build $(SANITIZE_DIR) -j $(JOBS) $(if $(filter unit,$(SANITIZE_SCOPE)),--target $(SANITIZE_UNIT_TARGETS))
	./tests/sanitize/run.sh $(SANITIZE_DIR) $(SANITIZE_SCOPE)

# A verifying mixed load for SOAK_MINUTES while workers, memcached and rend-l2 are killed at random;
# prints requests, failures by kind, wrong values and memory, and fails on a wrong or lost value.
SOAK_MINUTES ?= 30
soak: build
	python3 ./bench/soak.py $(BUILD_DIR) --minutes $(SOAK_MINUTES) --json $(BUILD_DIR)/soak.json

# libFuzzer on every decoder of outside bytes, FUZZ_SECONDS per target, in its own clang build.
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	@./scripts/install-deps.sh --fuzz
	@CC=clang CXX=clang++ cmake -S . -B $(FUZZ_DIR) -G "Unix Makefiles" -DREND_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_text_request fuzz_binary_request fuzz_backend_response \
	  fuzz_chunk_format fuzz_l2_value fuzz_config fuzz_control_request
	./tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR) $(SANITIZE_DIR)
