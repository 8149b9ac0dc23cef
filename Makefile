# The one test command: every test, race detector on, fuzz seeds included.
.PHONY: test vet build bench microbench fuzz

GO ?= go
# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 10s

build:
	$(GO) build -buildvcs=auto -o bin/drover ./cmd/drover

test: vet
	$(GO) test -race -timeout 30m ./...
	cd third_party/go-smtp && $(GO) test -race ./...

# go vet and the gofmt check.
vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# End-to-end throughput: smtp-source -> drover -> smtp-sink, beside Postfix
# in the same run (needs root for Postfix's tools; see bench/README.md).
bench: build
	./bench/run

# Go micro-benchmarks.
microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Every fuzz target of every package for FUZZTIME each (go test fuzzes one
# target of one package at a time); `make test` runs their seed corpora.
# Go 1.26's fuzz coordinator can fail a target with "context deadline
# exceeded" at the end of -fuzztime having found nothing (Go issue 75804):
# such a failure, with no failing input written, is reported and passed.
fuzz:
	@set -e; for pkg in $$(grep -rl --include='*_test.go' --exclude-dir=third_party '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			if ! out=$$($(GO) test -run '^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) $$pkg 2>&1); then \
				echo "$$out"; \
				if echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input written'; then \
					echo "== $$pkg $$f: deadline failure without a failing input, not counted"; \
				else \
					exit 1; \
				fi; \
			fi; \
		done; \
	done
