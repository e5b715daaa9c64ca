# Spillway's build. Every tool it needs is installed from the Go module proxy
# into ./bin at a pinned version; nothing else is required but Go itself.

GO          ?= go
BIN         := $(CURDIR)/bin
STATICCHECK := $(BIN)/staticcheck
ERRCHECK    := $(BIN)/errcheck
BENCHSTAT   := $(BIN)/benchstat

STATICCHECK_VERSION := v0.8.2
ERRCHECK_VERSION    := v1.30.0
BENCHSTAT_VERSION   := v0.0.0-20260908200009-22c9c6c9d4da

# Benchmarks: GOMAXPROCS=2 (the machine the README's numbers come from), six
# runs each so that benchstat and the ratio table can take medians.
BENCH_COUNT ?= 6
BENCH_TIME  ?= 1s
BENCH_CPU   ?= 2
BENCH_OUT   ?= bench.out

# Fuzzing: make test runs every target for FUZZ_SHORT, make fuzz for FUZZTIME.
# Budgets are execution counts, not durations: with a duration, Go 1.26's fuzz
# coordinator can fail a clean run with "context deadline exceeded" when its
# deadline races a busy worker (golang/go#75804, fixed in Go 1.27).
FUZZ_SHORT ?= 10000x
FUZZTIME   ?= 2000000x
# "package:FuzzTarget" pairs, with ":budget" for make test where a target's
# executions are costly (FuzzSegmentRecovery opens a log on disk each time).
FUZZ_TARGETS := ./codec:FuzzDecode ./codec:FuzzRoundTrip ./codec:FuzzDecodeSealed ./fuzz:FuzzSegmentRecovery:1000x

# Stress: how much longer than in make test the concurrency tests run.
STRESS_SCALE ?= 25

# The ratio tables: a tool of the bench module (its go.mod may depend on
# golang.org/x/perf; the library's may not).
BENCHRATIO = cd bench && $(GO) run ./cmd/benchratio
STRESS_COUNT ?= 3

.PHONY: test demo spillway fmt-check vet cross lint unit fuzz-short bench bench-ring stress fuzz tools clean

test: fmt-check vet cross lint unit fuzz-short

# The README's first command: the command line's default bench (under a
# minute on two cores), Spillway beside a buffered channel.
demo:
	cd cmd/spillway && $(GO) run . bench

# The command line, built into ./bin.
spillway:
	cd cmd/spillway && $(GO) build -o $(BIN)/spillway .

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	cd cmd/spillway && $(GO) vet ./...
	cd metrics/prometheus && $(GO) vet ./...
	cd bridge/natsjs && $(GO) vet ./...

# The library builds beyond Linux (mmap/fs_other.go): keep it so.
cross:
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=freebsd GOARCH=amd64 $(GO) build ./...

# Unchecked errors: the library discards one only explicitly (`_ =`, with
# its reason beside it); tests and benchmarks never (-blank: not even with
# `_`). errcheck exits 1 on what it finds; the test-only pass filters its
# output to test files.
lint: $(STATICCHECK) $(ERRCHECK)
	$(STATICCHECK) ./...
	$(ERRCHECK) ./...
	cd bench && $(ERRCHECK) -blank ./...
	cd cmd/spillway && $(STATICCHECK) ./... && $(ERRCHECK) ./...
	cd metrics/prometheus && $(STATICCHECK) ./... && $(ERRCHECK) -blank ./...
	cd bridge/natsjs && $(STATICCHECK) ./... && $(ERRCHECK) -blank ./...
	@out=$$(cd cmd/spillway && $(ERRCHECK) -blank ./... | grep '_test\.go:'); \
	if [ -n "$$out" ]; then echo "tests discard errors:"; echo "$$out"; exit 1; fi
	@out=$$($(ERRCHECK) -blank ./... | grep '_test\.go:'); \
	if [ -n "$$out" ]; then echo "tests discard errors:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'Allocs' ./...   # allocation counts, which -race distorts
	# The lock-free code as it runs in production: under -race a release
	# store is sync/atomic's Store, without it a plain MOV (internal/release).
	# The plain-MOV run also checks the invariants the comments state
	# (internal/invariants); spillway_atomic runs the same tests with
	# sync/atomic in place of every plain store, so that a failure seen only
	# with plain stores points at the memory-model bet.
	$(GO) test -count=1 -tags invariants ./...
	$(GO) test -count=1 -tags spillway_atomic . ./ring ./internal/...
	# More Ps than cores: threads preempted in the middle of an operation
	# (between a claim and its publication, say), which two Ps on two cores
	# rarely give. TestSpillStress failed here one run in twenty before the
	# fix of a receiver that overtook an unpublished claim.
	$(GO) test -count=5 -cpu 8 -run 'Stress|NoLostWakeup' . ./ring
	cd bench && $(GO) test -count=1 ./cmd/...
	# The command line, on directories the library wrote.
	cd cmd/spillway && $(GO) test -race -count=1 ./...
	# The Prometheus collector (its own module).
	cd metrics/prometheus && $(GO) test -race -count=1 ./...
	# The NATS JetStream bridge (its own module), against JetStream in the
	# process. The three-node cluster runs without -race: under the race
	# detector, on two cores, its elections and catch-up outlast the test's
	# patience now and then.
	cd bridge/natsjs && $(GO) test -race -count=1 -skip 'Cluster' ./...
	cd bridge/natsjs && $(GO) test -count=1 -run 'Cluster' ./...

fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; budget=$(FUZZ_SHORT); \
		case $$rest in *:*) budget=$${rest#*:};; esac; \
		echo "fuzz $$pkg $$fn for $$budget"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $$budget $$pkg || exit 1; \
	done

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; \
		echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

# The packages whose tests take -stress.scale (a flag other packages lack).
STRESS_PKGS := . ./ring

# The durability tests (kill -9 rounds, simulated power losses, the model)
# take -stress.scale too: at 25, 50 kill -9 rounds per sync policy.
STRESS_RUN := Stress|Linearizable|NoLostWakeup|Kill9|PowerLoss|PersistentModel|PersistentTopicModel|PersistentQueueDelay|PersistentDedup|PersistentTopicDelay|DedupModel|QueueDedupRetries|QueuePriorities

stress:
	$(GO) test -race -count=$(STRESS_COUNT) -timeout 60m -run '$(STRESS_RUN)' $(STRESS_PKGS) -args -stress.scale=$(STRESS_SCALE)
	$(GO) test -count=$(STRESS_COUNT) -timeout 60m -cpu 2,8 -run '$(STRESS_RUN)' $(STRESS_PKGS) -args -stress.scale=$(STRESS_SCALE)
	$(GO) test -race -count=$(STRESS_COUNT) -timeout 60m -run 'Kill|Torn|Corrupt' ./mmap
	cd bridge/natsjs && $(GO) test -count=$(STRESS_COUNT) -timeout 30m -run 'Cluster|Outage|Kill9' . -args -cluster.messages=100000 -outage=10s

bench: bench-ring bench-codec bench-mmap bench-peers

bench-ring: $(BENCHSTAT)
	$(GO) test -run '^$$' -bench . -benchtime $(BENCH_TIME) -count $(BENCH_COUNT) -cpu $(BENCH_CPU) ./ring | tee $(BENCH_OUT)
	@echo
	$(BENCHSTAT) -col /impl $(BENCH_OUT)
	@echo
	@$(BENCHRATIO) ring chan < $(abspath $(BENCH_OUT))

bench-codec: $(BENCHSTAT)
	$(GO) test -run '^$$' -bench . -benchtime $(BENCH_TIME) -count $(BENCH_COUNT) -cpu $(BENCH_CPU) ./codec | tee codec-$(BENCH_OUT)
	@echo
	$(BENCHSTAT) -col /impl codec-$(BENCH_OUT)
	@echo
	@$(BENCHRATIO) spillway raw < $(abspath codec-$(BENCH_OUT))

bench-mmap: $(BENCHSTAT)
	$(GO) test -run '^$$' -bench . -benchtime $(BENCH_TIME) -count $(BENCH_COUNT) -cpu $(BENCH_CPU) ./mmap | tee mmap-$(BENCH_OUT)
	@echo
	$(BENCHSTAT) mmap-$(BENCH_OUT)

# The comparison with peer libraries lives in its own module (bench/).
bench-peers: $(BENCHSTAT)
	cd bench && $(GO) test -run '^$$' -bench . -benchtime $(BENCH_TIME) -count $(BENCH_COUNT) -cpu $(BENCH_CPU) . | tee ../peers-$(BENCH_OUT)
	@echo
	$(BENCHSTAT) -col /impl peers-$(BENCH_OUT)
	@echo
	@$(BENCHRATIO) zstd bigqueue diskqueue < $(abspath peers-$(BENCH_OUT))
	@$(BENCHRATIO) s2 bigqueue diskqueue s2-floor < $(abspath peers-$(BENCH_OUT))
	@$(BENCHRATIO) spillway chan workiva floor < $(abspath peers-$(BENCH_OUT))
	@$(BENCHRATIO) topic queue < $(abspath peers-$(BENCH_OUT))
	@$(BENCHRATIO) -key=ack auto manual < $(abspath peers-$(BENCH_OUT))
	@$(BENCHRATIO) -key=subs fast=2+slow fast=2 < $(abspath peers-$(BENCH_OUT))
	@$(BENCHRATIO) spillway bigqueue jetstream diskqueue < $(abspath peers-$(BENCH_OUT))
	@$(BENCHRATIO) persistent ephemeral < $(abspath peers-$(BENCH_OUT))
	@$(BENCHRATIO) -key=senders 32 1 < $(abspath peers-$(BENCH_OUT))

tools: $(STATICCHECK) $(ERRCHECK) $(BENCHSTAT)

$(STATICCHECK):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(ERRCHECK):
	GOBIN=$(BIN) $(GO) install github.com/kisielk/errcheck@$(ERRCHECK_VERSION)

$(BENCHSTAT):
	GOBIN=$(BIN) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

clean:
	rm -rf $(BIN) *$(BENCH_OUT)
