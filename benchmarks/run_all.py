"""Run every benchmark in turn (``make bench``); each prints its ratio against its peer.

Results are recorded by hand in benchmarks/RESULTS.md with the command that produced
them: the machines are shared and noisy, so compare ratios, not absolute times.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    ["benchmarks.bench_lookup_engine", "--grids", "65000", "--points", "1000000"],
    ["benchmarks.bench_lookup_http", "--grids", "65000"],
    ["benchmarks.bench_import"],
    ["benchmarks.bench_tiles"],
    ["benchmarks.bench_events"],
]


def main() -> int:
    failed = []
    for module, *args in BENCHMARKS:
        print(f"\n=== {module} {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, "-m", module, *args]).returncode != 0:
            failed.append(module)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
