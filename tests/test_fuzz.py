"""Property-based fuzzing of every documented operation (schemathesis, from /openapi.json) against the real
all-modules server: no 5xx, no hang (a request timeout counts as a failure), and every status, content type
and JSON body as the document says. scripts/fuzz_long.py runs the same fuzzer for longer."""
from __future__ import annotations

import pytest

from .test_reliability_support import (delete_instances, live_settings, load_character, restore_settings,
                                       run_schemathesis, shared_server)  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def test_fuzz_every_operation(shared_server, tmp_path, report_figure):
    server = shared_server
    load_character(server)  # talkinghead routes reach their real logic, not only the 404 of no instance
    before = live_settings(server)
    try:
        result = run_schemathesis(server, tmp_path / "fuzz", max_examples=4, seed=20261125)
    finally:
        restore_settings(server, before)
        delete_instances(server)
    report_figure(f"fuzz: {result.cases} generated requests in {result.seconds:.0f} s, "
                  f"{len(result.failures)} failures")
    assert result.cases > 300, result.output[-3000:]
    assert result.returncode == 0 and not result.failures, "\n".join(result.failures) or result.output[-6000:]
    assert "Traceback" not in server.log()
    health = server.get("/health").json()
    assert health["status"] == "ok", health
