# kitshop: `make demo` runs the whole shop locally, `make test` runs every test.
GO      ?= go
BIN     ?= bin
export CI

.PHONY: demo test test-unit deps build consul fmt vet bench clean

# Integration tests need PostgreSQL, RabbitMQ and Consul; deps starts what is down.
# Under CI=true a missing component fails the run instead of skipping tests.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

deps:
	@if [ "$(CI)" = "true" ]; then scripts/deps.sh --require; else scripts/deps.sh; fi

build:
	$(GO) build -o $(BIN)/ ./...

consul:
	consul/install.sh

fmt:
	gofmt -l -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
