# kitshop: `make demo` runs the whole shop locally, `make test` runs every test.
GO      ?= go
BIN     ?= bin
export CI

.PHONY: demo up down status logs scale restart launcher test deps lint-workflows build consul fmt vet bench clean proto proto-check \
	compose-up compose-down compose-scale compose-roll compose-test swarm-test

# The whole shop on this machine, no Docker: Consul, two instances of every service,
# the gateway on :8080, a seeded catalogue and a walk through one checkout. Ctrl-C stops.
# The launcher runs as a built binary, not under `go run`, so that Ctrl-C reaches it
# and it can stop every instance in order.
demo: launcher
	$(BIN)/kitshop demo $(ARGS)

up: launcher
	$(BIN)/kitshop up -detach $(ARGS)

down: launcher
	$(BIN)/kitshop down $(ARGS)

status: launcher
	$(BIN)/kitshop status $(ARGS)

# Every instance's log, merged in time order: ARGS="-f", "-trace <X-Trace-Id>",
# "-service order -level warn", "-since 5m", "-json".
logs: launcher
	$(BIN)/kitshop logs $(ARGS)

# A running stack, one service at a time: ARGS="inventory 4" (scale), ARGS="order -build"
# (restart: every instance replaced in turn, with a fresh binary).
scale: launcher
	$(BIN)/kitshop scale $(ARGS)

restart: launcher
	$(BIN)/kitshop restart $(ARGS)

launcher:
	$(GO) build -o $(BIN)/kitshop ./cmd/kitshop

# Integration tests need PostgreSQL, RabbitMQ and Consul; deps starts what is down.
# Under CI=true a missing component fails the run instead of skipping tests.
test: lint-workflows deps proto-check
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

# The GitHub Actions workflows of .github/workflows, checked by actionlint at a pinned
# version, built from its Go module by go run (the build cache keeps it; no binary to
# go stale in bin/, and go.mod stays the services'). actionlint also runs shellcheck
# on every run: script when shellcheck is on PATH, as it is on GitHub's runners.
ACTIONLINT ?= github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
lint-workflows:
	$(GO) run $(ACTIONLINT)

# The gRPC code of every .proto (inventory/pb, payment/pb, pkg/auth/pb), regenerated with
# Debian's protoc (apt-get install protobuf-compiler) and the two plugins at pinned
# versions, installed into $(BIN)/ from their Go modules. The generated code is
# committed: building kitshop needs none of this.
PROTOC_GEN_GO      ?= google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC ?= google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
PROTOS = $(wildcard */pb/*.proto pkg/*/pb/*.proto)
PROTO_OUT ?= .
proto:
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler libprotobuf-dev" >&2; exit 1; }
	GOBIN=$(abspath $(BIN)) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(abspath $(BIN)) $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$(abspath $(BIN)):$$PATH" protoc --proto_path=. \
		--go_out=$(PROTO_OUT) --go_opt=paths=source_relative \
		--go-grpc_out=$(PROTO_OUT) --go-grpc_opt=paths=source_relative $(PROTOS)

# The committed gRPC code is what make proto makes of the .proto files now (part of
# make test; without protoc it is skipped, except under CI=true, where it fails).
proto-check:
	@if ! command -v protoc >/dev/null; then \
		if [ "$(CI)" = "true" ]; then echo "proto-check: protoc missing (apt-get install protobuf-compiler libprotobuf-dev)" >&2; exit 1; fi; \
		echo "proto-check: skipped, protoc missing (apt-get install protobuf-compiler libprotobuf-dev)"; exit 0; fi; \
	out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	$(MAKE) -s proto PROTO_OUT=$$out >/dev/null && \
	for f in $$(cd $$out && find . -name '*.go'); do \
		cmp -s "$$out/$$f" "$$f" || { echo "proto-check: $$f differs from what make proto generates; run make proto" >&2; exit 1; }; \
	done && \
	for f in $$(git ls-files '*.pb.go'); do \
		[ -f "$$out/$$f" ] || { echo "proto-check: $$f has no .proto any more; remove it" >&2; exit 1; }; \
	done && echo "proto-check: generated gRPC code is current"

deps:
	@if [ "$(CI)" = "true" ]; then scripts/deps.sh --require; else scripts/deps.sh; fi

# The stack of docker-compose.yml, every image built on this machine (no registry
# needed; deploy/compose.sh starts or installs Docker when it must). compose-down keeps
# the volumes; ARGS=-v removes them too. ARGS of compose-up go to docker-compose up,
# e.g. ARGS="--scale order=3".
compose-up:
	deploy/compose.sh up $(ARGS)

compose-down:
	deploy/compose.sh down $(ARGS)

# A running stack's service, changed without a failed request (deploy/compose.sh: one
# container at a time, each passing in Consul before an old one stops), e.g.
# make compose-scale SERVICE=order N=4, make compose-roll SERVICE=order ARGS=-build.
compose-scale:
	deploy/compose.sh scale $(SERVICE) $(N)

compose-roll:
	deploy/compose.sh roll $(SERVICE) $(ARGS)

# up, the checks of deploy/stacktest through the published ports, down: a stack of its
# own (project kitshop-test) on free ports, removed with its volumes at the end.
compose-test:
	$(GO) run ./deploy/stacktest compose $(ARGS)

# The same images on a one-node Docker Swarm (deploy/swarm), checked by the smoke path.
swarm-test:
	$(GO) run ./deploy/stacktest swarm $(ARGS)

build:
	$(GO) build -o $(BIN)/ ./...

consul:
	consul/install.sh

# One measured run (bench/run.sh): the gateway against direct and nginx under wrk,
# checkout against pgbench, RSS and start-up per service, the hot paths' go test
# -bench; results in bench/results/<date>.json, .md and .gobench.txt. Needs wrk, nginx
# and pgbench; deps --bench installs them (Debian packages wrk, nginx, postgresql).
bench:
	scripts/deps.sh --require --bench
	bench/run.sh

fmt:
	gofmt -l -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
