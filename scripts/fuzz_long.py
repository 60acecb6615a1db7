"""The long fuzz run: the same schemathesis checks as tests/test_fuzz.py, with many more examples per
operation and a time budget, against a fresh all-modules server (``--secure``; websearch answered by
local fake engines, so nothing leaves 127.0.0.1).

    .venv/bin/python scripts/fuzz_long.py [--minutes 30] [--examples 200] [--workers 2] [--seed N]

Prints every failure with a curl line that reproduces it and exits 1 if there was any; the JUnit report,
the CLI output and the server log stay in the printed folder.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GREENROOM_LOAD_PLUGINS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tests.test_reliability_support import load_character, run_schemathesis, start_all_modules  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30, help="time budget of the fuzzing run")
    parser.add_argument("--examples", type=int, default=200, help="most generated cases per operation and phase")
    parser.add_argument("--workers", type=int, default=2, help="concurrent schemathesis workers")
    parser.add_argument("--seed", type=int, help="seed, to repeat a run")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out

    folder = Path(tempfile.mkdtemp(prefix="greenroom-fuzz-"))
    print(f"server, reports and logs in {folder}", flush=True)
    server = start_all_modules(folder / "server")
    try:
        load_character(server)
        result = run_schemathesis(server, folder / "report", max_examples=args.examples,
                                  max_time=args.minutes * 60, workers=args.workers, seed=args.seed,
                                  request_timeout=120)
    finally:
        code = server.stop()
    log = server.log()
    print(f"{result.cases} generated cases in {result.seconds:.0f} s; {len(result.failures)} failures; "
          f"server exit code {code}; tracebacks in the server log: {log.count('Traceback')}")
    for failure in result.failures:
        print(" -", failure)
    if result.returncode != 0 and not result.failures:
        print(result.output[-4000:])
    return 0 if result.returncode == 0 and not result.failures and code == 0 and "Traceback" not in log else 1


if __name__ == "__main__":
    sys.exit(main())
