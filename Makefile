# One command per habit: `make run`, `make test`, `make lint`, `make bench`, `make demo`.
# Every target installs what is missing first (Azurite from npm, NuGet packages through restore)
# and is safe to re-run. CI (.ci/run) calls `make lint` and `make test`, nothing else.

DOTNET ?= dotnet
SOLUTION := Lepton.Functions.sln
NPM_STAMP := node_modules/.installed
# A hung test fails the run instead of stalling CI: every test that does I/O has its own xunit
# Timeout; beyond that, a test host in which no test starts or finishes for TEST_HANG_TIMEOUT is
# dumped (a mini dump under each project's TestResults/, named in the output with the tests then
# running) and killed, and the whole run stops after TEST_TIMEOUT. Skipped tests count as failures.
TEST_TIMEOUT ?= 30m
TEST_HANG_TIMEOUT ?= 10m
TEST_ARGS ?=

.PHONY: install run test lint lint-bicep format build clean bench

install: $(NPM_STAMP)

# Azurite is pinned in package.json (3.35.0: 3.36+ needs Node >= 21).
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

build: install
	$(DOTNET) build $(SOLUTION) --nologo -clp:NoSummary

# The built CLI is exec'd (not `dotnet run`), so the stack is make's direct child: it dies with make
# (its parent-death signal), and its own children die with it, however it is stopped.
run: build
	exec $(DOTNET) src/Cli/bin/Debug/net10.0/lepton.dll dev $(RUN_ARGS)

test: build
	$(DOTNET) test --solution $(SOLUTION) --no-build --timeout $(TEST_TIMEOUT) --fail-skips on \
		--hangdump --hangdump-timeout $(TEST_HANG_TIMEOUT) --hangdump-type Mini $(TEST_ARGS)

# Formatting and code style as .editorconfig says, the Bicep templates, then a build with every
# analyzer as an error. NU1603 (a dependency's exact version is not served here, the next one up
# is) stays a warning, as Directory.Build.props says: -warnaserror would otherwise turn the
# solution restore's NU1603 into errors.
lint: install
	$(DOTNET) format $(SOLUTION) --verify-no-changes --severity warn
	$(MAKE) --no-print-directory lint-bicep
	$(DOTNET) build $(SOLUTION) --nologo -clp:NoSummary -warnaserror -warnnotaserror:NU1603 --no-incremental

# `bicep build` of every template and parameter file and `bicep lint` of every template (rules in
# infra/bicep/bicepconfig.json), any diagnostic failing the step. The Bicep CLI comes from NuGet:
# restoring tools/Bicep brings Azure.Bicep.CommandLine.linux-x64, whose props name the binary.
BICEP_TOOL := tools/Bicep/Bicep.csproj
lint-bicep:
	$(DOTNET) restore $(BICEP_TOOL) --nologo -v quiet
	tools/Bicep/check-bicep.sh "$$($(DOTNET) msbuild $(BICEP_TOOL) -nologo -getProperty:BicepPath)" infra/bicep

format:
	$(DOTNET) format $(SOLUTION)

# The worker's load and ratio benchmarks (wrk, from Debian, pinned beside the real worker process),
# BenchmarkDotNet micro-benchmarks, the canary test's power under peeking, fast rollback (requests
# a failing candidate serves after the deciding look), then the soak (the
# real local stack through a rollout under load, with a storage stall and a worker restart).
# Figures are printed, never asserted. BENCH_ARGS=--quick for a short pass.
BENCH_DLL := bench/Lepton.Bench/bin/Release/net10.0/Lepton.Bench.dll
bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(DOTNET) build bench/Lepton.Bench -c Release --nologo -clp:NoSummary
	$(DOTNET) $(BENCH_DLL) load $(BENCH_ARGS)
	$(DOTNET) $(BENCH_DLL) micro $(BENCH_ARGS)
	$(DOTNET) $(BENCH_DLL) canary $(BENCH_ARGS)
	$(DOTNET) $(BENCH_DLL) fast-rollback $(BENCH_ARGS)
	$(DOTNET) $(BENCH_DLL) soak $(BENCH_ARGS)

clean:
	$(DOTNET) clean $(SOLUTION) --nologo -v quiet
	rm -rf .lepton TestResults
