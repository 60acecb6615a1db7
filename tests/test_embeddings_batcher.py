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

    def __call__(self, texts):
        self.calls.append(list(texts))
        self.entered.set()
        self.gate.wait(10)
        return np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)], dtype=np.float32)


def run_async(batcher, texts, results, key, costs=None):
    def go():
        try:
            results[key] = batcher.submit(texts, costs)
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
    threads = [run_async(batcher, ["bb", "ccc"], results, "second"),
               run_async(batcher, ["dddd"], results, "third")]
    time.sleep(0.2)  # both are queued behind the running call
    encoder.gate.set()
    for t in [first, *threads]:
        t.join(10)
    assert encoder.calls[0] == ["a"] and len(encoder.calls) == 2
    assert sorted(encoder.calls[1]) == ["bb", "ccc", "dddd"]
    assert results["second"].vectors[:, 0].tolist() == [2.0, 3.0]
    assert results["third"].vectors[:, 0].tolist() == [4.0]
    assert batcher.calls == 2 and batcher.texts_encoded == 4
    batcher.close()


def test_max_batch_splits_calls_and_errors_reach_every_caller():
    calls = []

    def failing(texts):
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
    batcher = DynamicBatcher(lambda texts: np.zeros((len(texts), 2), np.float32))
    assert batcher.submit(["x"]).vectors.shape == (1, 2)
    batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit(["y"])


def test_a_big_request_is_cut_into_calls_and_a_small_one_waits_for_one_call():
    encoder = GatedEncoder()
    batcher = DynamicBatcher(encoder, window_s=0, max_batch=100, max_tokens=40)
    results: dict = {}
    big_texts = [f"big{i:03d}" for i in range(50)]
    big = run_async(batcher, big_texts, results, "big", costs=[10] * 50)  # 500 tokens: 13 calls of 4 texts
    assert encoder.entered.wait(5)
    small = run_async(batcher, ["hi"], results, "small", costs=[1])
    time.sleep(0.2)  # queued behind the first call of "big"
    encoder.gate.set()
    small.join(10)
    big.join(10)
    assert encoder.calls[0] == big_texts[:4] and encoder.calls[1] == ["hi"]  # the next call, on its own
    assert all(sum(10 if t.startswith("big") else 1 for t in call) <= 40 for call in encoder.calls)
    assert results["big"].vectors[:, 0].tolist() == [6.0] * 50 and len(results["small"].vectors) == 1
    batcher.close()


def test_a_text_over_the_call_budget_still_goes_alone():
    calls: list[list[str]] = []

    def encode(texts):
        calls.append(list(texts))
        return np.zeros((len(texts), 2), np.float32)

    batcher = DynamicBatcher(encode, window_s=0, max_tokens=5)
    assert batcher.submit(["a", "long", "b"], [1, 9, 1]).vectors.shape == (3, 2)
    assert calls == [["a"], ["long"], ["b"]]
    batcher.close()


def test_close_fails_the_rest_of_a_big_request():
    encoder = GatedEncoder()
    batcher = DynamicBatcher(encoder, window_s=0, max_batch=1)
    results: dict = {}
    big = run_async(batcher, ["a", "b", "c"], results, "big")
    assert encoder.entered.wait(5)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    time.sleep(0.1)
    encoder.gate.set()
    big.join(10)
    closer.join(10)
    assert isinstance(results["big"], BatcherClosed) and len(encoder.calls) == 1
