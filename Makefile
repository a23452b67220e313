# weir — build, run a local cluster, test, benchmark.
#
#   make run     build, start a local cluster (1 JobManager, 2 TaskManagers), run an example job, show the result
#   make stop    stop the local cluster started by `make run`
#   make test    format and vet checks, unit tests with -race, end-to-end tests on real processes
#   make bench   benchmarks (see docs/benchmarks.md); make bench-nexmark for Nexmark q0-q2, make bench-backpressure
#                for checkpoints under backpressure
#   make fuzz    every fuzz target for FUZZTIME (default 1m) each, e.g. make fuzz FUZZTIME=10m (docs/fuzzing.md)
#   make proto   regenerate proto/weirpb from proto/weir.proto

GO        ?= go
BIN       := bin
BINARIES  := $(BIN)/jobmanager $(BIN)/taskmanager $(BIN)/weir
# Static, small binaries: no cgo, no debug info, reproducible paths.
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w"

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

.PHONY: all build run stop test unit e2e check tools bench bench-nexmark bench-backpressure fuzz proto clean

all: build

build:
	$(GOBUILD) -o $(BIN)/ ./cmd/jobmanager ./cmd/taskmanager ./cmd/weir

run: build
	@deploy/local/cluster.sh restart
	@deploy/local/run-example.sh

stop:
	@deploy/local/cluster.sh stop

test: check unit e2e

check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if $(GO) list -deps ./pkg/scheduler ./pkg/coordinator | grep -q minio; then \
	  echo "pkg/scheduler or pkg/coordinator links minio-go: storage drivers are registered by main (snapshot.Register)"; exit 1; fi
	@if $(GO) list -deps ./pkg/scheduler ./pkg/coordinator | grep -q go.etcd.io; then \
	  echo "pkg/scheduler or pkg/coordinator links the etcd client: only the JobManager's shell may (pkg/ha's etcd.go, cmd/)"; exit 1; fi

# Test tools (MinIO for the s3:// tests, etcd for the HA tests): built once into ~/.cache/weir-tools.
tools:
	@.ci/tools.sh

unit: tools
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/)

e2e: build tools
	$(GO) test -count=1 -timeout 25m ./test/e2e/

bench: build tools
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...
	$(GO) test -run '^$$' -bench 'EngineVsLoop|PipelineTLS|CheckpointOverhead|Recovery|CheckpointStorage|JobManagerFailover' -benchtime 1x -count 1 -timeout 30m ./test/e2e/

# Nexmark q0-q2 (examples/nexmark), with and without exactly-once checkpoints every 10 s: events per TaskManager
# CPU-second, set beside Flink's per-core figures in docs/benchmarks.md. 400 M events each (the published runs have
# 100 M), so that every run lasts several checkpoint intervals (about 3 minutes in all).
NEXMARK_EVENTS ?= 400000000
bench-nexmark: build
	WEIR_BENCH_EVENTS=$(NEXMARK_EVENTS) $(GO) test -run '^$$' -bench Nexmark -benchtime 1x -count 1 -timeout 60m ./test/e2e/

# Checkpoint duration under backpressure, aligned vs unaligned (about 2 minutes).
bench-backpressure: build
	$(GO) test -run '^$$' -bench Backpressure -benchtime 1x -count 1 -timeout 30m ./test/e2e/

# Fuzzing (docs/fuzzing.md): every target below for FUZZTIME, one at a time (go test -fuzz takes one target per
# run). `make test` already runs their seed corpora. A crash leaves its input in <pkg>/testdata/fuzz/<Target>/.
# Go 1.26 may end a run with "context deadline exceeded" although nothing failed (golang/go#75804, fixed in 1.27):
# that is reported and skipped, unless an input was written.
FUZZTIME         ?= 1m
FUZZMINIMIZETIME ?= 10s
FUZZPARALLEL     ?= 1
FUZZ_TARGETS     ?= \
	./pkg/jobgraph:FuzzParse \
	./pkg/config:FuzzParseValue ./pkg/config:FuzzLoad \
	./pkg/expr:FuzzFastPathMatchesCEL \
	./pkg/network:FuzzNextRecord ./pkg/network:FuzzServerFrames ./pkg/network:FuzzClientFrames \
	./pkg/record:FuzzDecodeBinary ./pkg/record:FuzzDecodeJSON \
	./pkg/snapshot:FuzzDecodeMetadata ./pkg/snapshot:FuzzDecodeTaskState ./pkg/snapshot:FuzzKeyGroups \
	./pkg/taskexec:FuzzChannelState

fuzz:
	@log=$$(mktemp); trap 'rm -f $$log $$log.rc' EXIT; \
	for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "== $$name ($$pkg) for $(FUZZTIME)"; \
	  { $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) \
	      -parallel $(FUZZPARALLEL) $$pkg; echo $$? >$$log.rc; } 2>&1 | tee $$log; \
	  if grep -q 'no fuzz tests to fuzz' $$log; then echo "== $$name: no such fuzz target in $$pkg"; exit 1; fi; \
	  if [ "$$(cat $$log.rc)" != 0 ]; then \
	    if grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
	      echo "== $$name: ended by golang/go#75804 at the deadline, not by a failing input"; \
	    else exit 1; fi; \
	  fi; \
	done

proto:
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(CURDIR)/$(BIN)/tools:$$PATH protoc -I proto \
	  --go_out=proto/weirpb --go_opt=paths=source_relative \
	  --go-grpc_out=proto/weirpb --go-grpc_opt=paths=source_relative \
	  proto/weir.proto

clean:
	rm -rf $(BIN)
