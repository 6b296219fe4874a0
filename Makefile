# sluice: thin wrapper around meson. `make run` and `make test` work on a fresh Debian 12.
BUILD   ?= build
CONFIG  ?= etc/sluice.toml
JOBS    ?= $(shell nproc)

.PHONY: all deps build run test bench fuzz clean

all: build

deps:
	@bash third_party/install.sh

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	./$(BUILD)/src/main/sluiced --config $(CONFIG)

# One Criterion binary holds every unit and integration test; its summary ends the run.
# The test peers (swaks with TLS and IPv6, openssl, python3) are checked first, then every
# fuzz driver runs briefly from its seeds (tests/fuzz/ci.sh; skipped without clang). Last,
# the unit tests and a chosen set of integration suites run again under ASan+UBSan (build-asan)
# and the ring, store-lane and categorizer drivers under TSan (build-tsan): tests/sanitize/.
test: build
	@bash tests/check_peers.sh
	@bash tests/fuzz/ci.sh
	./$(BUILD)/tests/sluice-tests --jobs $(JOBS)
	@SANITIZE_JOBS=$(JOBS) bash tests/sanitize/run.sh all

bench:
	@bash third_party/install.sh --bench
	bash bench/run.sh

# libFuzzer drivers (clang++, own build dir build-fuzz/); FUZZ_SECONDS per target.
fuzz:
	bash tests/fuzz/run.sh $(or $(FUZZ_SECONDS),60)

clean:
	rm -rf $(BUILD)
