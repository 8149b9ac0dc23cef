# The one test command: every test, race detector on, fuzz seeds included.
.PHONY: test bench build vet fuzz

GO ?= go

build:
	$(GO) build -o bin/drover ./cmd/drover

test:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test -race -timeout 30m ./...
	cd third_party/go-smtp && $(GO) test -race ./...

# End-to-end throughput: smtp-source -> drover -> smtp-sink, beside Postfix
# in the same run (needs root for Postfix's tools; see bench/README.md).
bench: build
	./bench/run

# Go micro-benchmarks.
microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
