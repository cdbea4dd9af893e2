# LowRank — the two commands: `make demo` (the main job) and `make test` (the whole test suite).
# Both install the Debian packages they need when missing (non-interactively, only what is missing).

SWIFT        ?= swift
APT_PACKAGES := libopenblas-openmp-dev liblapacke-dev pkg-config libdnnl-dev zlib1g-dev dataset-fashion-mnist
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE_BIN  := .build/release/lowrank

.PHONY: test demo build release deps bench clean

## Install missing system packages (Debian/Ubuntu).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## Build and run every test (release mode: the numerical tests are 10-50x slower in debug).
test: deps
	$(SWIFT) build -c release --build-tests -Xswiftc -enable-testing
	$(SWIFT) test -c release -Xswiftc -enable-testing --skip-build

## The most useful thing the tool does today.
demo: release
	$(RELEASE_BIN) demo

bench: release
	$(RELEASE_BIN) bench core

clean:
	rm -rf .build
