"""token_entropy vs TRL's entropy_from_logits on the same CPU tensors, in one run.

    python benchmarks/entropy.py [--rows 2048] [--vocab 32768] [--repeats 5] [--skip-large]

For each dtype (float32, bfloat16) and logit shape ("random": N(0, 3^2) logits,
"peaked": the same plus one token boosted by 12, as in a trained LM where most
positions are near-deterministic) it prints the median time of both, the speed
ratio (TRL / heal-hf, > 1 means heal-hf is faster), the max relative error of each
against a float64 reference, and the peak extra memory each needs beyond its
input. Each implementation is timed and measured in a fresh process of its own
(see `measure`). A final case runs the 4096 x
152064 (Qwen vocabulary) bfloat16 tensor for memory. Goal: ratio >= 1 with bounded
memory; stretch: 2x.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch


def make_logits(rows: int, vocab: int, dtype: torch.dtype, kind: str, seed: int = 0) -> torch.Tensor:
    """Filled in blocks of 64 rows, so building it needs no full-size float32 temporary."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(rows, vocab, dtype=dtype)
    for start in range(0, rows, 64):
        block = torch.randn(min(64, rows - start), vocab, generator=g) * 3
        if kind == "peaked":
            top = torch.randint(0, vocab, (len(block),), generator=g)
            block[torch.arange(len(block)), top] += 12.0
        x[start : start + len(block)] = block
    return x


def implementation(name: str):
    if name == "trl":
        from trl.trainer.utils import entropy_from_logits

        return entropy_from_logits
    from heal_hf import token_entropy

    return token_entropy


def measure(name: str, rows: int, vocab: int, dtype: str, kind: str, repeats: int) -> dict:
    """Time and memory of one implementation, in a fresh interpreter of its own.

    A fresh process per implementation keeps one's allocator state (TRL's chunk
    temporaries go through mmap and page faults) from skewing the other's timing.
    After a full-size warm-up call: the median of `repeats` timed calls, then one
    call during which a thread polls glibc's mallinfo2 every 0.2 ms for the peak of
    bytes in use above those before it (RSS would miss temporaries that reuse pages
    freed by earlier calls).
    """
    code = f"""
import ctypes, json, statistics, sys, threading, time, torch
sys.path.insert(0, {repr(sys.path[0])})
from entropy import make_logits, implementation

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
def in_use():  # bytes malloc has handed out (heap + mmapped chunks), resident or not
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd

f = implementation({name!r})
x = make_logits({rows}, {vocab}, torch.{dtype}, {kind!r})
times = []
with torch.no_grad():
    f(x)
    for _ in range({repeats}):
        t0 = time.perf_counter(); f(x); times.append(time.perf_counter() - t0)
base, peak, done = in_use(), [0], threading.Event()
def poll():
    while not done.is_set():
        peak[0] = max(peak[0], in_use())
        time.sleep(0.0002)
t = threading.Thread(target=poll); t.start()
with torch.no_grad():
    f(x)
done.set(); t.join()
print(json.dumps({{"ms": 1000 * statistics.median(times), "peak_extra_mib": max(0, peak[0] - base) / 2**20}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def max_rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float(((got.double() - want).abs() / want.abs().clamp(min=1e-12)).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--skip-large", action="store_true", help="skip the 4096 x 152064 memory case")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, logits {args.rows} x {args.vocab}")
    header = f"{'dtype':<9}{'logits':<8}{'TRL ms':>9}{'heal ms':>9}{'ratio':>7}{'TRL err':>10}{'heal err':>10}{'TRL MiB':>9}{'heal MiB':>9}"
    print(header)
    results = []
    cases = [(d, k, args.rows, args.vocab) for d in ("float32", "bfloat16") for k in ("random", "peaked")]
    if not args.skip_large:
        cases.append(("bfloat16", "peaked", 4096, 152064))
    for dtype, kind, rows, vocab in cases:
        x = make_logits(rows, vocab, getattr(torch, dtype), kind)
        with torch.no_grad():
            ref = implementation("trl")(x.double())
            err = {n: max_rel_err(implementation(n)(x), ref) for n in ("trl", "heal")}
        repeats = args.repeats if rows == args.rows else 2
        trl, heal = (measure(n, rows, vocab, dtype, kind, repeats) for n in ("trl", "heal"))
        row = {
            "dtype": dtype, "logits": kind, "shape": [rows, vocab],
            "trl_ms": trl["ms"], "heal_ms": heal["ms"], "speed_ratio": trl["ms"] / heal["ms"],
            "trl_max_rel_err": err["trl"], "heal_max_rel_err": err["heal"],
            "trl_peak_extra_mib": trl["peak_extra_mib"], "heal_peak_extra_mib": heal["peak_extra_mib"],
        }
        del x, ref
        results.append(row)
        label = kind if rows == args.rows else f"{kind} {rows}x{vocab}"
        print(f"{dtype:<9}{label:<8}{row['trl_ms']:>9.1f}{row['heal_ms']:>9.1f}{row['speed_ratio']:>7.2f}"
              f"{row['trl_max_rel_err']:>10.1e}{row['heal_max_rel_err']:>10.1e}"
              f"{row['trl_peak_extra_mib']:>9.0f}{row['heal_peak_extra_mib']:>9.0f}")
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
