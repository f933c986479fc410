# graft's build, run and test entry points. `make help` lists them.

GO      ?= go
BIN     := bin/graft
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.buildVersion=$(VERSION)
EXAMPLE ?= examples/hello.yaml

.PHONY: all build run test integration lint vet imports fmt-check race-engine bench gobench fuzz soak man status-capture help

all: build

## build: compile bin/graft
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/graft

## run: build and run the agent on the hello-world graph, its state in .graft/, on loopback (Ctrl-C stops it)
run: build
	./$(BIN) run --data-dir .graft --cluster-addr 127.0.0.1:0 --gossip-addr 127.0.0.1:0 yaml $(EXAMPLE)

## test: lint, then every test with the race detector (but the integration tests)
test: lint
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/integration$$')

## integration: the multi-host tests, graft on network namespaces (needs root and iproute2)
integration:
	$(GO) test -race -count=1 -v -timeout 15m ./integration/

## lint: gofmt, go vet, and the import arrows of DESIGN.md (internal/importcheck)
lint: fmt-check vet imports

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) -C bench/etcdload vet .

imports:
	$(GO) run ./internal/importcheck

## race-engine: the engine's tests 20 times over under -race
race-engine:
	$(GO) test -race -count=20 ./engine/

## bench: the benchmark driver (bench/): bin/graft on generated graphs and as a 3-node cluster, one table and bench/results/latest.json; ETCD_BIN=/MGMT_BIN= run the same workloads on etcd/mgmt, alternating; BENCHQUICK=1 a smoke run of seconds; BENCHFLAGS more flags (go run ./bench -h)
bench: build
	$(GO) run ./bench -graft $(BIN) $(if $(BENCHQUICK),-quick) $(BENCHFLAGS)

## gobench: the go test benchmarks of every package, BENCHCOUNT runs each (default 5; report medians)
BENCHCOUNT ?= 5
gobench:
	$(GO) test -run '^$$' -bench . -benchtime 3x -count $(BENCHCOUNT) ./...

## fuzz: run each fuzz target for FUZZTIME (default 30s): graph files, log entries, snapshots, and every network input
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./gapi/yamlgraph/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzRestore$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzReadRequest$$' -fuzztime $(FUZZTIME) ./cluster/transport/
	$(GO) test -run '^$$' -fuzz '^FuzzReadResponse$$' -fuzztime $(FUZZTIME) ./cluster/transport/
	$(GO) test -run '^$$' -fuzz '^FuzzMuxHandshake$$' -fuzztime $(FUZZTIME) ./cluster/transport/
	$(GO) test -run '^$$' -fuzz '^FuzzAdmission$$' -fuzztime $(FUZZTIME) ./cluster/transport/
	$(GO) test -run '^$$' -fuzz '^FuzzServeRPC$$' -fuzztime $(FUZZTIME) ./cluster/raftnode/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMeta$$' -fuzztime $(FUZZTIME) ./cluster/
	$(GO) test -run '^$$' -fuzz '^FuzzHandlePacket$$' -fuzztime $(FUZZTIME) ./discovery/
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME) ./api/server/

## soak: random fault schedules back to back for SOAKTIME (default 10m) under -race, a line of the checkers' counts, live heap and goroutines every 30 s; fails at the first violation (printing its replay command) or if the heap or the goroutines grew (not in CI)
SOAKTIME ?= 10m
# Local directory mode (-C, no package), so that its lines stream; the
# timeout is SOAKTIME plus 15m (Go's durations add up: 10m15m is 25m).
soak:
	GRAFT_SOAK=$(SOAKTIME) $(GO) test -C faultsuite -race -count=1 -run '^TestSoakKeepsEveryGuaranteeWithoutGrowth$$' -timeout $(SOAKTIME)15m

## man: write the manual page, made from the commands' own definitions, to docs/man/graft.1 (man -l docs/man/graft.1)
man: build
	mkdir -p docs/man
	./$(BIN) man > docs/man/graft.1

## status-capture: rewrite docs/status.txt (and docs/status-tmux.txt, a tmux capture-pane, if tmux is installed) from `graft status` on three real agents; the test that compares them with the output runs in `make test`
status-capture:
	GRAFT_UPDATE_STATUS_CAPTURE=1 $(GO) test -count=1 -run '^TestStatusOfThreeAgents$$' ./cmd/graft/

## help: list the targets
help:
	@grep -E '^## ' Makefile | sed 's/^## /  /'
