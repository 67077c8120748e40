"""Load test of the Entropy Explorer: concurrent gradio_client requests against the real server.

    python benchmarks/space_load.py [--requests 20] [--samples 8] [--max-new-tokens 64] [--model ID]

Starts `spaces/entropy-explorer/app.py` on 127.0.0.1 (offline), then:
1. latency of single requests (8 samples x 64 tokens by default: the 3 s goal), median of 3;
2. `--requests` requests sent at once from as many threads, each checked: one table row
   per sample, EDA rewards in [0, 1], and the same rows for requests that share a seed
   (seeds repeat every `--requests // 2`); prints p50 / p95 / max latency;
3. a burst larger than the queue (`QUEUE_MAX_SIZE` + 16 requests of the same size): the
   ones past the queue's bound are refused at once instead of piling up in memory;
4. the server's resident memory (VmRSS) after start-up and its peak (VmHWM) at the end.
Linux only (memory from /proc).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from gradio_client import Client  # noqa: E402

from heal_hf.app.space import QUEUE_MAX_SIZE  # noqa: E402

PROMPT = "Q: 23+58=?\nA:"


def start_app(model: str | None, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
    }
    if model:
        command = [sys.executable, "-m", "heal_hf.cli", "space", "--model", model]
    else:
        command = [sys.executable, str(ROOT / "spaces" / "entropy-explorer" / "app.py")]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"the app exited:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("the app did not start within 5 minutes")


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def explore(client: Client, samples: int, tokens: int, seed: int) -> tuple[float, dict]:
    """Latency (s) and the sample table ({"headers": [...], "data": rows}) of one request."""
    start = time.perf_counter()
    out = client.predict("", PROMPT, samples, 1.0, tokens, seed, api_name="/explore")
    return time.perf_counter() - start, out[2]


def check(table: dict, samples: int) -> None:
    rows = table["data"]
    assert len(rows) == samples, f"expected {samples} table rows, got {len(rows)}"
    eda = [row[table["headers"].index("EDA")] for row in rows]
    assert all(0.0 <= r <= 1.0 for r in eda), f"EDA rewards out of [0, 1]: {eda}"


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="concurrent requests (default 20)")
    parser.add_argument("--samples", type=int, default=8, help="samples per request (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens per sample (default 64)")
    parser.add_argument("--model", default=None, help="model id (default: the app's default model)")
    args = parser.parse_args()

    log = Path(tempfile.mkdtemp(prefix="space_load_")) / "app.log"
    started = time.perf_counter()
    proc, url = start_app(args.model, log)
    try:
        print(f"app up in {time.perf_counter() - started:.1f} s at {url} (log: {log})")
        client = Client(url, verbose=False, analytics_enabled=False)
        boot = memory_mib(proc.pid)
        print(f"server memory after start-up: RSS {boot['VmRSS']:.0f} MiB")

        single = [explore(client, args.samples, args.max_new_tokens, seed)[0] for seed in range(3)]
        print(f"single request, {args.samples} samples x {args.max_new_tokens} tokens: "
              f"median {statistics.median(single):.2f} s (runs: {', '.join(f'{t:.2f}' for t in single)})")

        seeds = [i % max(1, args.requests // 2) for i in range(args.requests)]
        wall = time.perf_counter()
        with ThreadPoolExecutor(args.requests) as pool:
            results = list(pool.map(lambda s: explore(client, args.samples, args.max_new_tokens, s), seeds))
        wall = time.perf_counter() - wall
        by_seed: dict[int, list] = {}
        for seed, (_, table) in zip(seeds, results):
            check(table, args.samples)
            rows = table["data"]
            assert by_seed.setdefault(seed, rows) == rows, f"seed {seed}: different answers to the same request"
        latencies = [t for t, _ in results]
        print(f"{args.requests} concurrent requests: all {len(results)} answered and checked in {wall:.1f} s; "
              f"latency p50 {percentile(latencies, 50):.2f} s, p95 {percentile(latencies, 95):.2f} s, "
              f"max {max(latencies):.2f} s")

        burst = QUEUE_MAX_SIZE + 16

        def burst_request(seed: int) -> str:
            try:
                check(explore(client, args.samples, args.max_new_tokens, seed)[1], args.samples)
                return "answered"
            except AssertionError:
                raise
            except Exception as err:  # the queue's refusal reaches the client as an error
                return f"refused ({str(err).splitlines()[0][:60]})"

        # gradio_client's default 40 workers would pace the burst below the queue's bound.
        client = Client(url, verbose=False, analytics_enabled=False, max_workers=burst)
        wall = time.perf_counter()
        with ThreadPoolExecutor(burst) as pool:
            outcomes = list(pool.map(burst_request, range(burst)))
        counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
        print(f"burst of {burst} requests against a queue of {QUEUE_MAX_SIZE}, in {time.perf_counter() - wall:.1f} s: "
              f"{counts}")

        end = memory_mib(proc.pid)
        print(f"server memory at the end: RSS {end['VmRSS']:.0f} MiB, peak (VmHWM) {end['VmHWM']:.0f} MiB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
