# meshctl developer tasks. `make test` is what CI runs (.ci/run); `make generate` refreshes the
# checked-in completions, man pages and command reference after a change to the command line.

CARGO ?= cargo
# --locked: fail rather than quietly rewrite Cargo.lock (CI must build what was committed).
CARGO_FLAGS ?= --locked

.PHONY: all build install test lint generate bench clean

all: build

build:
	$(CARGO) build $(CARGO_FLAGS) --release

install:
	$(CARGO) install --path . --locked

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy $(CARGO_FLAGS) --all-targets -- -D warnings

# One recipe, so the steps run in order even under `make -j`. With cargo-nextest (one process per
# test, faster on many tests) the doc tests, which nextest does not run, go first: the test
# runner's summary line is then the last thing printed.
test:
	$(CARGO) fmt --all --check
	$(CARGO) clippy $(CARGO_FLAGS) --all-targets -- -D warnings
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		echo '$(CARGO) test $(CARGO_FLAGS) --doc'; \
		$(CARGO) test $(CARGO_FLAGS) --doc || exit $$?; \
		echo '$(CARGO) nextest run $(CARGO_FLAGS) --no-fail-fast'; \
		$(CARGO) nextest run $(CARGO_FLAGS) --no-fail-fast; \
	else \
		echo 'cargo-nextest not found; using cargo test'; \
		echo '$(CARGO) test $(CARGO_FLAGS) --no-fail-fast'; \
		$(CARGO) test $(CARGO_FLAGS) --no-fail-fast; \
	fi

# Rewrites completions/, docs/man/ and docs/reference.md from the clap definitions
# (tests/generated.rs fails when they are stale).
generate:
	MESHCTL_UPDATE_GENERATED=1 $(CARGO) test $(CARGO_FLAGS) --test generated

bench:
	bash bench/validate.sh
	bash bench/get.sh
	bash bench/serve.sh
	bash bench/proxy.sh
	bash bench/route.sh
	bash bench/etcd.sh

clean:
	$(CARGO) clean
