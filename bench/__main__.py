"""`make bench` / `python -m bench [NAME ...]`: run the benchmarks one after another.

Each benchmark measures itself beside a baseline in the same run and prints the ratio on its
last line, so the figures hold on a noisy machine."""

from __future__ import annotations

import importlib
import sys
import time

BENCHES = ("order_admission", "stock_query", "bot_roundtrip", "scheduler_scan", "outbox_drain")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    failed = []
    for name in names:
        if name not in BENCHES:
            print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)}")
            return 2
        print(f"== bench/{name}", flush=True)
        started = time.perf_counter()
        try:
            rc = importlib.import_module(f"bench.{name}").main()
        except Exception as exc:  # one broken bench must not hide the others' numbers
            print(f"bench/{name} failed: {type(exc).__name__}: {exc}")
            rc = 1
        print(f"== bench/{name} done in {time.perf_counter() - started:.1f}s\n", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
