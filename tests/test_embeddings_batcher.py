"""The dynamic batcher on its own, with an encoder whose timing the test controls."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from greenroom_modules.embeddings.batcher import BatcherClosed, DynamicBatcher


class GatedEncoder:
    """Records each call's texts; the first call waits until the test opens the gate."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __call__(self, texts, count_tokens):
        self.calls.append(list(texts))
        self.entered.set()
        self.gate.wait(10)
        vectors = np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)], dtype=np.float32)
        return vectors, ([len(t) for t in texts] if count_tokens else None)


def run_async(batcher, texts, results, key, count_tokens=False):
    def go():
        try:
            results[key] = batcher.submit(texts, count_tokens)
        except Exception as exc:
            results[key] = exc
    thread = threading.Thread(target=go)
    thread.start()
    return thread


def test_requests_queued_during_a_call_share_the_next_call():
    encoder = GatedEncoder()
    batcher = DynamicBatcher(encoder, window_s=0, max_batch=100)
    results: dict = {}
    first = run_async(batcher, ["a"], results, "first")
    assert encoder.entered.wait(5)
    threads = [run_async(batcher, ["bb", "ccc"], results, "second", count_tokens=True),
               run_async(batcher, ["dddd"], results, "third")]
    time.sleep(0.2)  # both are queued behind the running call
    encoder.gate.set()
    for t in [first, *threads]:
        t.join(10)
    assert encoder.calls[0] == ["a"] and len(encoder.calls) == 2
    assert sorted(encoder.calls[1]) == ["bb", "ccc", "dddd"]
    assert results["second"].vectors[:, 0].tolist() == [2.0, 3.0] and results["second"].tokens == [2, 3]
    assert results["third"].vectors[:, 0].tolist() == [4.0]
    assert batcher.calls == 2 and batcher.texts_encoded == 4
    batcher.close()


def test_max_batch_splits_calls_and_errors_reach_every_caller():
    calls = []

    def failing(texts, count_tokens):
        calls.append(len(texts))
        raise ValueError("model exploded")

    batcher = DynamicBatcher(failing, window_s=0.05, max_batch=2)
    results: dict = {}
    threads = [run_async(batcher, ["x", "y"], results, i) for i in range(3)]
    for t in threads:
        t.join(10)
    assert all(isinstance(results[i], ValueError) for i in range(3))
    assert calls == [2, 2, 2]  # a job that fills max_batch is encoded without waiting for company
    batcher.close()


def test_close_rejects_new_work():
    batcher = DynamicBatcher(lambda texts, _: (np.zeros((len(texts), 2), np.float32), None))
    assert batcher.submit(["x"]).vectors.shape == (1, 2)
    batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit(["y"])
