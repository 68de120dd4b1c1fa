# The deployer's build, run and test commands. Every target works on a
# fresh machine with Go; `make e2e` also needs Debian's chromium package,
# which .ci/run installs.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/deployer

.PHONY: build run test e2e fuzz bench release clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# run starts the deployer on the embedded defaults: the simulated grid and
# deployer.db in this folder.
run: build
	./$(BIN)

# test checks that every Go file is formatted with gofmt, then runs every
# test with the race detector, the browser tests included, then each fuzz
# target briefly.
test:
	@unformatted=$$($$($(GO) env GOROOT)/bin/gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "not formatted with gofmt:" $$unformatted; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

# fuzz runs each fuzz target for FUZZTIME on top of its seed corpus. A
# failing input is saved under the package's testdata/fuzz, and go test
# replays it from then on. The budget is a count of inputs, not a duration:
# Go 1.26's fuzzing coordinator can report its own -fuzztime deadline as a
# failure when a worker is busy as it expires (go.dev/issue/75804), while a
# count ends without a deadline. Set FUZZTIME=5000000x for a longer search.
FUZZTIME ?= 50000x
FUZZ_TARGETS := \
	onboard:FuzzValidateUsername onboard:FuzzValidateFullName onboard:FuzzValidateEmail \
	onboard:FuzzValidateNodeID onboard:FuzzNormalizeTesterInput handlers:FuzzWriteEvent
fuzz:
	for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; name=$${target#*:}; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

# e2e runs only the browser tests.
e2e:
	$(GO) test -race -count=1 -timeout 10m ./e2e/...

# bench runs the benchmarks in bench/ against the built binary, BENCH_COUNT
# times each, and writes the raw output, a summary table, profiles and
# server logs to bench-results/. A figure that misses its target is
# reported, not failed; BENCHMARKS.md explains the figures.
BENCH_COUNT ?= 5
bench: build
	mkdir -p bench-results
	{ echo "commit: $(VERSION)"; uname -srm; $(GO) version; grep -m1 'model name' /proc/cpuinfo; echo "cores: $$(nproc)"; \
	  grep MemTotal /proc/meminfo; echo "load before: $$(cat /proc/loadavg)"; } > bench-results/machine.txt
	$(GO) test ./bench -run '^$$' -bench . -benchtime 1x -count $(BENCH_COUNT) -timeout 30m \
		-args -results $(CURDIR)/bench-results -deployer $(CURDIR)/$(BIN) | tee bench-results/bench.txt
	echo "load after: $$(cat /proc/loadavg)" >> bench-results/machine.txt
	$(GO) run ./bench/cmd/benchtable bench-results/bench.txt | tee bench-results/summary.md

# release builds a static, stripped binary for each of PLATFORMS into dist/,
# named deployer-VERSION-OS-ARCH, and writes their SHA-256 checksums to
# dist/SHA256SUMS. CGO_ENABLED=0 makes the binaries static: SQLite comes from
# modernc.org/sqlite, which is pure Go.
PLATFORMS ?= linux/amd64 linux/arm64
release:
	rm -rf dist
	mkdir -p dist
	for platform in $(PLATFORMS); do \
		os=$${platform%/*}; arch=$${platform#*/}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o dist/deployer-$(VERSION)-$$os-$$arch . || exit 1; \
	done
	cd dist && sha256sum deployer-* > SHA256SUMS

clean:
	rm -rf bin dist test-artifacts bench-results
