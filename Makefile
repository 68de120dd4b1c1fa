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

# test runs every test with the race detector, the browser tests included.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

# e2e runs only the browser tests.
e2e:
	$(GO) test -race -count=1 -timeout 10m ./e2e/...

clean:
	rm -rf bin dist test-artifacts bench-results
