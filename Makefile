# carotate's two commands:
#   make demo   stand up a throwaway lab cluster, run carotate against it, tear it down
#   make test   run every test, the end-to-end ones on real kubeadm clusters included
# Both need root on a Debian machine with Go; they install the Debian packages
# they need and build the pinned upstream components on first use (about
# 20 minutes cold, cached in $(CACHE) after that).

CACHE       ?= /var/cache/carotate
COMPONENTS  := $(CACHE)/components
export CAROTATE_CACHE := $(CACHE)
export CAROTATE_COMPONENTS := $(COMPONENTS)
export CAROTATE_IMAGE_CACHE := $(CACHE)/images
GO          ?= go
TEST_TIMEOUT ?= 80m
DEMO_DIR    ?= /tmp/carotate-demo
# The version carotate reports and writes into every rotation record; Go's
# own VCS stamping may be off (GOFLAGS=-buildvcs=false), so say it here.
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS     := -X github.com/carotate/carotate/internal/cli.releaseVersion=$(VERSION)

.PHONY: all build release deps components demo test unit e2e fuzz soak bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/carotate ./cmd/carotate
	ln -sf carotate bin/kubectl-carotate
	$(GO) build -o bin/lab ./cmd/lab
	CGO_ENABLED=0 $(GO) build -o bin/probe ./cmd/probe

# Static binaries for linux/amd64, linux/arm64 and darwin/arm64 with their
# sha256 sums and the krew manifest, in dist/ (see hack/release).
release:
	VERSION=$(VERSION) hack/release dist

deps:
	hack/install-deps

components: deps
	hack/build-components

demo: components build
	hack/demo $(DEMO_DIR)

# CAROTATE_E2E=require turns "skipped: no components" into a failure, so
# nothing is silently skipped here. -p 1: one package at a time. The node
# package's tests run a real sshd, which needs the host's /run/sshd, and the
# e2e labs check that the host is left as they found it; both also need the
# machine's two cores to keep their timing honest.
test: components
	CAROTATE_E2E=require $(GO) test -p 1 -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz

# Each fuzz target runs briefly; `make fuzz FUZZTIME=10m` for a real session.
FUZZTIME ?= 10s
FUZZ_TARGETS := \
	./internal/pki:FuzzParsePEMCertificates \
	./internal/pki:FuzzParsePEMPrivateKey \
	./internal/pki:FuzzParsePEMCertificateAndKey \
	./internal/kubeconfig:FuzzParse \
	./internal/manifest:FuzzParse \
	./internal/manifest:FuzzSetFlag
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

unit:
	$(GO) test -short ./...

# Kills a rotation of a 1+2 lab at every one of its side effects, twice
# (just after each, and just before each), resuming after every kill. Not
# run by `make test`; see the README for how long it takes.
SOAK_TIMEOUT ?= 240m
soak: components
	CAROTATE_E2E=require CAROTATE_SOAK=1 $(GO) test -count=1 -timeout $(SOAK_TIMEOUT) -run '^TestSoakCrashAtEverySideEffect$$' -v ./test/e2e

# Rotates a fresh 1+2 lab by the seed procedure (hack/seed-rotation), then
# another fresh one by carotate, under the same monitors, and prints the two
# side by side; BENCH_LAB=3+1 for the HA lab. Not run by `make test`; see the
# README for the latest table and how long it takes.
BENCH_LAB ?= 1+2
BENCH_TIMEOUT ?= 120m
bench: components
	CAROTATE_E2E=require CAROTATE_BENCH=1 CAROTATE_BENCH_LAB=$(BENCH_LAB) $(GO) test -count=1 -timeout $(BENCH_TIMEOUT) -run '^TestBench$$' -v ./test/e2e

clean:
	rm -rf bin dist
