"""``make bench``: every benchmark in turn, each printing its side-by-side ratios.

The worker benchmark (served vs raw ONNX Runtime, batching on vs off, router overhead, hot swaps),
the canary power simulation (false-rollback rate at alpha, requests to catch a 2x error
regression), the lifecycle wall time (upload to promotion on the real local stack) and the scale
simulation (registry, canary reads, warm-up quorum and router at many models and replicas). Pass
``--quick`` for a shorter run of each; pass one or more names to run only those.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from bench import canary_power, lifecycle_bench, scale_sim, worker_bench

Runner = Callable[[list[str]], int]

BENCHMARKS: dict[str, tuple[Runner, list[str]]] = {
    "worker": (worker_bench.main, ["--quick"]),
    "canary": (canary_power.main, ["--quick"]),
    "lifecycle": (lifecycle_bench.main, []),
    "scale": (scale_sim.main, ["--quick"]),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier figures)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    failed = 0
    for name in args.names or list(BENCHMARKS):
        run, quick_args = BENCHMARKS[name]
        print(f"\n=== bench: {name} ===", flush=True)
        started = time.monotonic()
        code = run(quick_args if args.quick else [])
        print(f"=== bench: {name} finished in {time.monotonic() - started:.0f} s (exit {code})")
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
