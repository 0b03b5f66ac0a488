"""Run every benchmark (``make bench``), each as its own process, and report failures.

Each ``benchmarks/bench_*.py`` runs with its defaults (the 65,000-grid sample city, its
peers set up by the script itself) and prints its own ratios.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Run the benchmarks one after another; exit 1 if any failed."""
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        module = f"benchmarks.{script.stem}"
        print(f"== {module}", flush=True)
        if subprocess.run([sys.executable, "-m", module], cwd=HERE.parent).returncode:
            failed.append(module)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
