"""Base numbers of a world-explore reasoner: pass@1, pass@8 and the try/check share, per family.

    nice -n 15 python benchmarks/results/world-explore/measure_base.py MODEL_DIR [--pool POOL_DIR] [--out NAME]
        [--families NAME ...]

On each explore family's test split (200 problems x 8 samples at T = 1, seed 0, at most 48
new tokens, as criterion 5 of criteria-preregistration.md says): pass@1 (the samples' mean
pass rate), pass@8 (problems with a passing sample), the headroom pass@8 - pass@1, the
samples' mean try/check share (`heal_hf.toy.explore`), the pass rates of the samples that try
and of those that answer directly (pooled, and within problem: over the problems with samples of
both kinds, the mean difference, free of which problems the model chooses to try on), the share of tries whose working is false arithmetic
(faked checks), and mean token entropy (general families: at most 150 problems, what the
two-digit searches' test splits hold); greedy
accuracy and greedy share too. With `--pool`, the try/check share, pass rate and mean token entropy of the pool's
stored samples of the general problems the hybrid selection picks for 32 target rows (seed
0): the general side of criterion 7, and of criterion 1 at step 0. Writes NAME.json and NAME.md beside this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from heal_hf.app.evaluation import greedy_completions
from heal_hf.data.models import load_causal_lm
from heal_hf.data.rollout import sample_with_entropies
from heal_hf.toy import explore, tasks

HERE = Path(__file__).parent
GENERAL_PROBLEMS = 150


def test_samples(model, tokenizer, name: str, problems: int, samples: int, seed: int):
    """A family, its test prompts and answers, and `samples` samples of each at T = 1 (what every number here reads)."""
    family = tasks.get_family(name)
    # The two-digit general searches have about 160 test problems: they give 150.
    rows = family.generate(problems if family.domain == tasks.TARGET else min(problems, GENERAL_PROBLEMS), split="test", seed=seed)
    prompts, answers = [r["prompt"] for r in rows], [r["answer"] for r in rows]
    sampled = sample_with_entropies(model, tokenizer, prompts, num_samples=samples, max_new_tokens=explore.COMPLETION_BUDGET,
                                    temperature=1.0, seed=seed)
    return family, prompts, answers, sampled


def load(model_dir: str):
    """The reasoner on the CPU, one torch thread (these scripts share cores with training runs)."""
    torch.set_num_threads(1)
    return load_causal_lm(model_dir, device="cpu", dtype="float32")


def family_numbers(model, tokenizer, name: str, problems: int, samples: int, seed: int) -> dict:
    family, prompts, answers, sampled = test_samples(model, tokenizer, name, problems, samples, seed)
    scores = [[family.verify(t, a) for t in texts] for texts, a in zip(sampled.texts, answers)]
    greedy = greedy_completions(model, tokenizer, prompts, explore.COMPLETION_BUDGET, chat_template=False, batch_size=64)
    entropies = sampled.flat_entropies()
    texts = [t for ts in sampled.texts for t in ts]
    counts = [explore.try_check(t) for t in texts]  # once per sample, read by every number below
    tried = [c.tries > 0 for c in counts]
    flat_scores = [s for row in scores for s in row]
    out = {
        "domain": family.domain,
        "pass_at_1": statistics.mean(s for row in scores for s in row),
        "pass_at_k": statistics.mean(float(any(row)) for row in scores),
        "try_check_share": explore.try_check_share(texts),
        "uses_try_check": statistics.mean(map(float, tried)),
        "try_check_pass_rate": _rate([s for s, t in zip(flat_scores, tried) if t]),
        "direct_pass_rate": _rate([s for s, t in zip(flat_scores, tried) if not t]),
        "within_problem": _within_problem(scores, [[next(kinds) for _ in ts] for kinds in [iter(tried)] for ts in sampled.texts]),
        # Out of room: samples that never reach `Answer:` within the budget, among those that try and the rest.
        "unanswered_when_trying": _rate([float("answer:" not in t.lower()) for t, k in zip(texts, tried) if k]),
        "unanswered_when_direct": _rate([float("answer:" not in t.lower()) for t, k in zip(texts, tried) if not k]),
        "faked_checks": _rate([c.miscomputed / c.tries for c in counts if c.tries]),
        "greedy_accuracy": statistics.mean(family.verify(g, a) for g, a in zip(greedy, answers)),
        "greedy_try_check_share": explore.try_check_share(greedy),
        "mean_token_entropy": sum(map(sum, entropies)) / max(1, sum(map(len, entropies))),
        "examples": [{"prompt": p, "sample": ts[0], "score": s[0]} for p, ts, s in list(zip(prompts, sampled.texts, scores))[:3]],
    }
    out["headroom"] = out["pass_at_k"] - out["pass_at_1"]
    return out


def _within_problem(scores: list[list[float]], tried: list[list[bool]]) -> dict:
    """Trying vs answering directly on the same problems: over the problems with samples of both kinds,
    the mean of (pass rate of the trying samples - pass rate of the direct ones), and how many such problems."""
    gaps = []
    for row, kinds in zip(scores, tried):
        tried_scores = [s for s, k in zip(row, kinds) if k]
        direct = [s for s, k in zip(row, kinds) if not k]
        if tried_scores and direct:
            gaps.append(statistics.mean(tried_scores) - statistics.mean(direct))
    return {"gain": _rate(gaps), "problems": len(gaps)}


def _rate(scores: list[float]) -> float | None:
    return statistics.mean(scores) if scores else None


def selected_general(pool_dir: str, tokenizer, seed: int = 0) -> dict:
    """Try/check share, pass rate and mean token entropy of the pool's samples of the general problems the hybrid
    arms mix in (criterion 7's general side, and criterion 1's at step 0: its entropy must reach the target's)."""
    from heal_hf.data.pool import load_pool, tokenizer_fingerprint

    sys.path.insert(0, str(HERE.parents[1]))  # benchmarks/: criteria.py's selection, the one criteria 1 and 7 read
    from criteria import mean_token_entropy, selected_rows

    pool = load_pool(pool_dir, tokenizer_hash=tokenizer_fingerprint(tokenizer))
    picks = selected_rows(pool, seed)
    texts = [t for row in picks["responses"] for t in row]
    everything = [t for row in pool["responses"] for t in row]
    return {"selected_try_check_share": explore.try_check_share(texts),
            "selected_mean_token_entropy": mean_token_entropy(picks),
            "pool_mean_token_entropy": mean_token_entropy(pool),
            "selected_pass_rate": statistics.mean(picks["pass_rate"]),
            "selected_families": {f: list(picks["source"]).count(f) for f in sorted(set(picks["source"]))},
            "pool_try_check_share": explore.try_check_share(everything),
            "pool_pass_rate": statistics.mean(pool["pass_rate"])}


def _signed(within: dict | None) -> str:
    return "-" if not within or within["gain"] is None else f"{within['gain']:+.3f} ({within['problems']})"


def markdown(model_dir: str, numbers: dict, general: dict | None, problems: int, samples: int) -> str:
    lines = [f"# Base numbers of `{model_dir}`", "",
             f"Test split, {problems} problems x {samples} samples at T = 1 (seed 0, <= {explore.COMPLETION_BUDGET} tokens).", "",
             "| family | domain | pass@1 | pass@8 | headroom | try/check share | uses try/check | pass when trying | pass when direct | trying - direct, same problems (n) | unanswered: trying / direct | faked checks | greedy | greedy share | entropy (nats) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for name, r in numbers.items():
        lines.append(f"| {name} | {r['domain']} | {r['pass_at_1']:.3f} | {r['pass_at_k']:.3f} | {r['headroom']:+.3f} | "
                     f"{r['try_check_share']:.3f} | {r['uses_try_check']:.3f} | {fmt(r['try_check_pass_rate'])} | "
                     f"{fmt(r['direct_pass_rate'])} | {_signed(r.get('within_problem'))} | {fmt(r.get('unanswered_when_trying'))} / {fmt(r.get('unanswered_when_direct'))} | {fmt(r['faked_checks'])} | {r['greedy_accuracy']:.3f} | {r['greedy_try_check_share']:.3f} | "
                     f"{r['mean_token_entropy']:.3f} |")
    if general:
        lines += ["", f"General problems the hybrid selection picks (pool samples, seed 0): try/check share "
                  f"{general['selected_try_check_share']:.3f}, pass rate {general['selected_pass_rate']:.3f}, "
                  f"mean token entropy {general['selected_mean_token_entropy']:.3f} nats (criterion 1 asks for at least each "
                  f"target's entropy above), "
                  f"families {general['selected_families']}; whole pool: share {general['pool_try_check_share']:.3f}, "
                  f"pass rate {general['pool_pass_rate']:.3f}, entropy {general['pool_mean_token_entropy']:.3f} nats."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a world-explore reasoner folder")
    parser.add_argument("--pool", default=None, help="its general-entropy pool folder (criterion 7's general side)")
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--out", default="base", help="file stem written beside this script (default base)")
    parser.add_argument("--families", nargs="*", default=None, metavar="NAME",
                        help="only these explore families (default every one), e.g. an RL run's target")
    args = parser.parse_args(argv)
    every = tasks.world_families("explore")
    names = args.families or every
    unknown = sorted(set(names) - set(every))
    if unknown:
        raise SystemExit(f"--families: {unknown} are not explore families; choose from {list(every)}")
    model, tokenizer = load(args.model)
    numbers = {name: family_numbers(model, tokenizer, name, args.problems, args.samples, 0) for name in names}
    general = selected_general(args.pool, tokenizer) if args.pool else None
    (HERE / f"{args.out}.json").write_text(json.dumps({"model": args.model, "problems": args.problems, "samples": args.samples,
                                                       "families": numbers, "general_selected": general}, indent=2) + "\n")
    text = markdown(args.model, numbers, general, args.problems, args.samples)
    (HERE / f"{args.out}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
