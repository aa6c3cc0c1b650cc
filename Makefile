# layercheck: see README.md. `make demo` and `make test` are the two commands to start with.
GO       ?= go
BIN      ?= bin/layercheck
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
SAMPLE   := testdata/sample.tar
FUZZTIME ?= 30s
# staticcheck 2026.2.2; a new version installs beside the old one (the path names it).
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK := bin/tools/staticcheck-$(STATICCHECK_VERSION)/staticcheck

.PHONY: all build demo test test-short lint fmt vet e2e bench bench-host fuzz clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/layercheck

## demo: build layercheck and verify the bundled sample image
demo: build
	./$(BIN) tar $(SAMPLE)

## test: the fast hermetic suite (no root, no daemons), with the race detector
test: vet
	$(GO) test -race -count=1 ./...
	$(GO) -C deploy/kubernetes test -count=1 ./...

test-short:
	$(GO) test -short ./...

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) -C deploy/kubernetes vet ./...

## lint: gofmt, go vet and staticcheck over every package, e2e files included; fails on any finding.
## staticcheck is pinned and installed on first use into bin/tools through the Go module proxy.
lint: vet $(STATICCHECK)
	$(GO) vet -tags e2e ./e2e/...
	$(STATICCHECK) -tags e2e ./...

$(STATICCHECK):
	GOBIN=$(CURDIR)/$(dir $(STATICCHECK)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

fmt:
	gofmt -w $$(git ls-files '*.go')

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

## bench: the ~1 GiB benchmark against crane and the standard-tool floor (see BENCHMARKS.md)
bench: build
	scripts/bench.sh

## bench-host: layercheck host on a ~0.85 GiB image against docker save (private dockerd), podman save (private graph root) and the registry storage's hash+gunzip floor; BENCH_STORES picks, BENCH_CACHE=cold|warm, BENCH_SHAPE=small-files (root; see BENCHMARKS.md)
bench-host:
	scripts/bench-host.sh

clean:
	rm -rf bin .bench

-include e2e/e2e.mk
