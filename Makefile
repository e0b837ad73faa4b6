# herald's developer entry points. `make test` is what CI runs.
GO        ?= go
BUF       := $(GO) tool -modfile=tools/go.mod buf
BIN       := bin/herald
TOOLS_BIN := $(CURDIR)/.tools/bin
export PATH := $(TOOLS_BIN):$(PATH)

.PHONY: all build run generate lint breaking staticcheck vulncheck check-generated vet fmt-check check tools test test-deploy test-short test-integration test-jaeger bench fuzz clean

all: build

## build: compile bin/herald
build:
	$(GO) build -o $(BIN) ./cmd/herald

## run: run herald with embedded defaults (queue in ./data, log sink, :8093)
run:
	$(GO) run ./cmd/herald serve

## generate: regenerate gen/ from proto/ with the pinned plugins
generate:
	$(BUF) generate

## lint: buf lint, go vet, gofmt and staticcheck
lint: vet fmt-check staticcheck
	$(BUF) lint

## staticcheck: staticcheck, pinned in tools/go.mod (checks: staticcheck.conf)
staticcheck:
	$(GO) tool -modfile=tools/go.mod staticcheck ./...

vet:
	$(GO) vet ./...
	@for m in $(dir $(DEPLOY_MODULES)); do echo "(cd $$m && $(GO) vet ./...)"; (cd $$m && $(GO) vet ./...) || exit 1; done

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## breaking: buf breaking (WIRE_JSON) against BREAKING_AGAINST (default: the
## previous commit, HEAD~1)
BREAKING_AGAINST ?= .git\#ref=HEAD~1
breaking:
	@if [ "$(BREAKING_AGAINST)" = '.git#ref=HEAD~1' ] && ! git rev-parse -q --verify HEAD~1 >/dev/null; then \
		echo "breaking: NOT CHECKED: this checkout has no previous commit (shallow clone); set BREAKING_AGAINST" >&2; \
	else $(BUF) breaking --against '$(BREAKING_AGAINST)'; fi

## vulncheck: govulncheck against the vulnerability database pinned in
## tools/go.mod, offline (scripts/vulncheck.sh)
vulncheck:
	./scripts/vulncheck.sh

## check-generated: fail when gen/ differs from a fresh buf generate
check-generated: generate
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has untracked files"; exit 1; }

## check: everything CI checks besides tests
check: check-generated lint breaking vulncheck

## tools: install what the tests need (the real Alertmanager; promtool when apt is there)
tools:
	./scripts/install-tools.sh

## test: the whole suite, integration tests with real Alertmanager and NATS
## included; test/jaeger only once Jaeger is built (make test-jaeger), else
## the last line says it did not run. A test whose tool is missing skips; under
## HERALD_TEST_REQUIRE_BINARIES=1 (as in .ci/run) or CI=true it fails instead.
test: tools
	@echo '$(GO) test -race -timeout 25m ./...'; status=0; \
	$(GO) test -race -timeout 25m ./... || status=$$?; \
	$(MAKE) --no-print-directory test-deploy || status=$$?; \
	jaeger="$${HERALD_JAEGER_BIN:-$(TOOLS_BIN)/jaeger}"; \
	if [ ! -e "$$jaeger" ]; then \
		echo "NOTE: test/jaeger did not run: Jaeger is not built ($$jaeger); make test-jaeger builds it once (~6 min) and runs it"; \
	fi; \
	exit $$status

## test-deploy: the Helm chart and the compose stack, each tested in a Go
## module of its own (deploy/helm, deploy/compose) that keeps Helm's and
## Compose's dependencies out of herald's go.mod
DEPLOY_MODULES := $(wildcard deploy/helm/go.mod deploy/compose/go.mod)
test-deploy:
	@status=0; for m in $(dir $(DEPLOY_MODULES)); do \
		echo "(cd $$m && $(GO) test -timeout 10m ./...)"; \
		(cd $$m && $(GO) test -timeout 10m ./...) || status=1; \
	done; exit $$status

## test-short: unit tests only (no external binaries, no slow integration)
test-short:
	$(GO) test -short -timeout 10m ./...

## test-integration: only the slow integration tests
test-integration: tools
	$(GO) test -race -timeout 25m -run 'Integration|Alertmanager|Cluster|Crash|Outage|EndToEnd' ./...

## test-jaeger: the end-to-end trace check against real Jaeger v2 (builds it
## once, ~6 min, into .tools/bin; make test runs the check from then on)
test-jaeger:
	./scripts/install-jaeger.sh
	$(GO) test -race -count=1 -run TestTraceReachesJaeger ./test/jaeger

## bench: Go benchmarks of the hot paths (with allocations), then the end-to-end load run (docs/benchmarks.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...
	$(GO) run ./cmd/heraldload

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin .tools
