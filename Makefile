# One command per habit: `make run`, `make test`, `make lint`, `make bench`, `make demo`.
# Every target installs what is missing first (Azurite from npm, NuGet packages through restore)
# and is safe to re-run. CI (.ci/run) calls `make lint` and `make test`, nothing else.

DOTNET ?= dotnet
SOLUTION := Lepton.Functions.sln
NPM_STAMP := node_modules/.installed
# A hung test fails the run instead of stalling CI; skipped tests count as failures.
TEST_TIMEOUT ?= 30m
TEST_ARGS ?=

.PHONY: install run test lint format build clean bench

install: $(NPM_STAMP)

# Azurite is pinned in package.json (3.35.0: 3.36+ needs Node >= 21).
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

build: install
	$(DOTNET) build $(SOLUTION) --nologo -clp:NoSummary

run: install
	$(DOTNET) run --project src/Cli -- dev $(RUN_ARGS)

test: build
	$(DOTNET) test --solution $(SOLUTION) --no-build --timeout $(TEST_TIMEOUT) --fail-skips on $(TEST_ARGS)

# Formatting and code style as .editorconfig says, then a build with every analyzer as an error.
lint: install
	$(DOTNET) format $(SOLUTION) --verify-no-changes --severity warn
	$(DOTNET) build $(SOLUTION) --nologo -clp:NoSummary -warnaserror --no-incremental

format:
	$(DOTNET) format $(SOLUTION)

# The worker's load and ratio benchmarks (wrk, from Debian, pinned beside the real worker process),
# then BenchmarkDotNet micro-benchmarks. Figures are printed, never asserted. BENCH_ARGS=--quick
# for a short pass.
BENCH_DLL := bench/Lepton.Bench/bin/Release/net10.0/Lepton.Bench.dll
bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(DOTNET) build bench/Lepton.Bench -c Release --nologo -clp:NoSummary
	$(DOTNET) $(BENCH_DLL) load $(BENCH_ARGS)
	$(DOTNET) $(BENCH_DLL) micro $(BENCH_ARGS)

clean:
	$(DOTNET) clean $(SOLUTION) --nologo -v quiet
	rm -rf .lepton TestResults
