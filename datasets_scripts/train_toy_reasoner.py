"""Train heal-hf's toy reasoner from scratch: a small Llama that reasons step by step on toy tasks.

    python datasets_scripts/train_toy_reasoner.py [--out DIR] [--steps 1700] [--threads 1] [--target-examples NAME=N ...]
    python datasets_scripts/train_toy_reasoner.py --world explore --out build/explore-reasoner --threads 1

Supervised next-token training (loss on the response and its end-of-text token) on a
mix that is mostly general-domain problems (`heal_hf.toy.tasks.GENERAL_FAMILIES`) plus
a few hundred examples of each target family, so that the model knows the general
domain well but not by rote (each general problem is worked in one of several valid
ways, so its forks keep entropy) and each target family only partly: its sampled pass
rate there should sit where RL can help (the issue's 15% to 60%; the rates move a lot
with the counts, see the README). Seeded; about 17 minutes on one thread of the 2 CPU
cores here with the defaults. At the end it measures greedy accuracy, the sampled pass
rate and mean token entropy (temperature 1) on every family's test split, prints them, and writes the model
(safetensors), the character tokenizer, a model card recording those rates, and
MANIFEST.json (every file's sha256) to `--out` (default: the folder bundled with
heal-hf, `heal_hf.toy.TOY_REASONER_PATH`). Files are written to a temporary folder
first and moved into place at the end, so an interrupted run leaves the old model.

`--world` picks the toy world (`heal_hf.toy.tasks.WORLDS`): `v6` (default, the bundled
reasoner, unchanged) or `explore`, where the target families are searches and the general
domain works by trying, checking and revising (`heal_hf.toy.explore`). In `explore` every
general problem keeps its worked try/check solution and a target problem keeps it with
probability `--target-try-share` (default 0.2; `NAME=P` sets one target family's, H20; the rest
answer directly with a guess that is not worked out, ` guess 7*8+9 for 65. Answer: 8`, from H10
on; it commits to the search's first try, right about half
the time, with probability `--direct-first-try` (default 1.0, H15; 0.0 is H10-H14's mix, which guesses the
accepted candidate; `NAME=P` sets one target family's, H17), so the
base model has the behaviour but uses it less in the target; the pass rates then add pass@k
(k = `--eval-samples`) and the samples' try/check share per family, and `--out` defaults to
build/explore-reasoner (the bundled folder is v6's).

`--micro-batches M` runs each batch as M parts of rows of similar length (the batch's rows sorted by
length), each part's mean loss weighted by its share of the batch's response tokens, so the gradient
is the whole batch's (the same rows and the same token-mean loss, up to float rounding) while a part
pads only to its own longest row: faster on CPU (`benchmarks/reasoner_build.py`). 1, the default, is
the single padded batch every model before H23 was trained with. (H22 sorted rows by length across 50
batches instead, `--length-buckets`, removed: its batches were mostly one family and its model failed.)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from heal_hf.toy import TOY_REASONER_PATH, explore, tasks, write_manifest
from heal_hf.toy.tiny import tiny_causal_lm

TARGET_EXAMPLES = {"sort_digits": 200, "reverse_word": 540, "letter_shift": 500, "digit_sum": 80, "countdown": 180, "weekday": 400}
"""Supervised examples per target family (default, world v6): few, so that each is known only partly."""
WORLD_TARGET_EXAMPLES = {"v6": TARGET_EXAMPLES, "explore": {"gym_countdown": 1200, "gym_equation": 300, "pair_sum": 300}}
GENERAL_SEEDS = {"missing_addend": 6, "missing_subtrahend": 6, "missing_term": 2}
"""General families with fewer distinct train problems than the mix asks for: drawn from this many seeds
(a problem recurs, worked with other tries: forks in correct solutions)."""
DEFAULT_OUT = {"v6": str(TOY_REASONER_PATH), "explore": "build/explore-reasoner"}
TARGET_TRY_SHARE = 0.2
"""World explore: the share of target training problems worked by trying and checking (the rest answer directly)."""
DIRECT_FIRST_TRY = 1.0
"""World explore: the probability that a direct target answer commits to the worked search's first try, right
only when it was (`explore.direct_response`; 1.0 from H15 on); otherwise it commits to the accepted candidate,
always right (H10-H14's 0.0)."""


def parse_counts(items: list[str], names: tuple[str, ...], flag: str, defaults: dict[str, int]) -> dict[str, int]:
    """`NAME=COUNT` items over `defaults`, NAME one of `names`; a clear error naming `flag` otherwise."""
    counts = dict(defaults)
    for item in items:
        name, _, count = item.partition("=")
        if name not in names or not count.isdigit():
            raise SystemExit(f"{flag}: expected NAME=COUNT with NAME in {list(names)}, got {item!r}")
        counts[name] = int(count)
    return counts


def parse_target_examples(items: list[str], world: str = "v6") -> dict[str, int]:
    """`NAME=COUNT` overrides of the world's target example counts."""
    return parse_counts(items, tasks.world_families(world, tasks.TARGET), "--target-examples", WORLD_TARGET_EXAMPLES[world])


def parse_target_draws(items: list[str], world: str = "explore") -> dict[str, int]:
    """`--target-draws NAME=K` (H31): a target family's examples drawn as K draws of count / K distinct problems,
    for a family whose train split holds fewer than its count (every other family: one draw, as before H31)."""
    draws = parse_counts(items, tasks.world_families(world, tasks.TARGET), "--target-draws", {})
    if any(k < 1 for k in draws.values()):
        raise SystemExit(f"--target-draws: K must be at least 1, got {draws}")
    return draws


def parse_uninformed(names: list[str], world: str, direct_first_try: dict[str, float]) -> list[str]:
    """`--uninformed NAME ...` (H36): target search families whose worked searches try candidates in an order that
    knows nothing of the answer and whose direct answers guess a uniformly drawn value; a clear error for a family
    that is not such a search, or whose --direct-first-try asks for something a guess cannot do."""
    searches = [n for n in tasks.world_families(world, tasks.TARGET) if tasks.get_family(n).candidates is not None]
    for name in names:
        if name not in searches:
            raise SystemExit(f"--uninformed: {name!r} is not a target search of world {world!r} that can be drawn "
                             f"again; choose from {searches}")
        if direct_first_try.get(name, DIRECT_FIRST_TRY) != 1.0:
            raise SystemExit(f"--uninformed {name}: its direct answers are uniform guesses, so --direct-first-try "
                             f"{name}={direct_first_try[name]:g} would not apply; leave it at 1")
    return list(dict.fromkeys(names))


def parse_general_examples(items: list[str], world: str = "v6") -> dict[str, int]:
    """`NAME=COUNT` train problems of general families that differ from --general-per-family."""
    return parse_counts(items, tasks.world_families(world, tasks.GENERAL), "--general-examples", {})


def parse_probabilities(items: list[str], flag: str, default: float, world: str = "explore") -> dict[str, float]:
    """`flag`'s items: one probability P for every target family, then `NAME=P` overrides, over `default`."""
    names = tasks.world_families(world, tasks.TARGET)
    out = dict.fromkeys(names, default)
    for item in items:
        name, _, value = item.rpartition("=")
        try:
            p = float(value)
        except ValueError:
            p = -1.0
        if (name and name not in names) or not 0.0 <= p <= 1.0:
            raise SystemExit(f"{flag}: expected P or NAME=P with P in [0, 1] and NAME in {list(names)}, got {item!r}")
        out.update({name: p} if name else dict.fromkeys(names, p))
    return out


def parse_direct_first_try(items: list[str], world: str = "explore") -> dict[str, float]:
    """`--direct-first-try` items (per family from H17)."""
    return parse_probabilities(items, "--direct-first-try", DIRECT_FIRST_TRY, world)


def parse_target_try_share(items: list[str], world: str = "explore") -> dict[str, float]:
    """`--target-try-share` items (per family from H20)."""
    return parse_probabilities(items, "--target-try-share", TARGET_TRY_SHARE, world)


def by_family(value: float | dict[str, float], default: float, world: str = "explore") -> dict[str, float]:
    """One probability per target family: a single P for every one, or a per-family dict whose missing
    families take `default`."""
    names = tasks.world_families(world, tasks.TARGET)
    return {**dict.fromkeys(names, default), **value} if isinstance(value, dict) else dict.fromkeys(names, value)


def direct_first_try_of(args: argparse.Namespace) -> dict[str, float]:
    """--direct-first-try of a run's arguments, per target family; summaries written before it say
    `direct_answer` (H15: first-try) or nothing (up to H14: the accepted candidate)."""
    value = getattr(args, "direct_first_try", None)
    if value is None:
        value = 1.0 if getattr(args, "direct_answer", None) == "first-try" else 0.0
    return by_family(value, DIRECT_FIRST_TRY)


def _uninformed_text(args: argparse.Namespace) -> str:
    """The card's sentence on --uninformed families (none before H36)."""
    names = getattr(args, "uninformed", None) or []
    if not names:
        return ""
    return (f"\n{', '.join(names)}: worked searches try candidates in an order that knows nothing of the answer, and "
            "a direct answer guesses a positive value the candidates take, drawn uniformly, not the search's first try "
            "(`--uninformed`).")


def _per_family(direct: dict[str, float], sep: str) -> str:
    """One probability written once when every family shares it (`0.5`), else `name{sep}p` per family."""
    if len(set(direct.values())) > 1:
        return " ".join(f"{name}{sep}{p:g}" for name, p in direct.items())
    return f"{next(iter(direct.values())):g}"


def training_rows(general_per_family: int, target_examples: dict[str, int], seed: int, world: str = "v6",
                  target_try_share: float | dict[str, float] = TARGET_TRY_SHARE,
                  general_examples: dict[str, int] | None = None,
                  direct_first_try: float | dict[str, float] = DIRECT_FIRST_TRY,
                  target_draws: dict[str, int] | None = None,
                  uninformed: Sequence[str] = ()) -> list[dict[str, str]]:
    """The supervised mix: train-split problems only (validation and test problems are never seen);
    `general_examples` overrides `general_per_family` for the families it names; `target_try_share` is the
    probability that a target problem keeps its worked search and `direct_first_try` the probability that a
    direct target answer commits to the search's first try (each one for every target family, or one per
    family); `target_draws` draws a target family's examples as K draws of count / K problems (a problem
    recurs, with other guesses and searches), as GENERAL_SEEDS does for general families. An `uninformed` family's
    searches are drawn again in an order that knows nothing of the answer and its direct answers guess a value drawn
    uniformly (`explore.uninformed_guess`, H36); the problems are the same as without it."""
    rows, general_examples = [], general_examples or {}
    share, first_try = by_family(target_try_share, TARGET_TRY_SHARE, world), by_family(direct_first_try, DIRECT_FIRST_TRY, world)
    for name in tasks.world_families(world, tasks.GENERAL):
        seeds = GENERAL_SEEDS.get(name, 1) if world != "v6" else 1
        count = general_examples.get(name, general_per_family)
        for extra in range(seeds):
            rows += tasks.generate(name, -(-count // seeds), split="train", seed=seed + 100_000 * extra)
    for name in tasks.world_families(world, tasks.TARGET):
        # A seed no RL run draws from (they use small seeds), so the few-shot sets are new problems too.
        draws, count = (target_draws or {}).get(name, 1), target_examples.get(name, 0)
        sizes = [count // draws + (k < count % draws) for k in range(draws)]  # one draw: the count, as before H31
        noise = explore.UNINFORMED_NOISE if name in uninformed else None
        try:
            drawn = [r for k, size in enumerate(sizes)
                     for r in tasks.generate(name, size, split="train", seed=10_000 + seed + 100_000 * k, noise=noise)]
        except tasks.SplitTooSmall as error:  # one draw asks for more distinct problems than the family's split holds
            raise SystemExit(f"--target-examples {name}={count}: {error}. Draw them as more, smaller draws "
                             f"(--target-draws {name}=K: K draws of {count} / K distinct problems each)") from None
        if world != "v6":  # most target problems answer directly: the behaviour is rarer in the target
            keep = random.Random(f"{name}/{seed}/try-share")
            first = random.Random(f"{name}/{seed}/first-try")  # its own draws: the try-share draws stay H10's
            family = tasks.get_family(name)

            def direct(row: dict[str, str]) -> str:
                if noise:  # a uniform guess (H36), drawn from the first-try stream the informed families use
                    guess = explore.uninformed_guess(first, family.candidates(row["prompt"]))
                    return explore.direct_response(row["response"], family.tried_answer, guess)
                return explore.direct_response(row["response"], family.tried_answer if first.random() < first_try[name] else None)

            drawn = [r if keep.random() < share[name] else {**r, "response": direct(r)} for r in drawn]
        rows += drawn
    random.Random(seed).shuffle(rows)
    return rows


def encode(rows: list[dict[str, str]], tokenizer) -> tuple[list[list[int]], list[int]]:
    """Token ids of prompt + response + </s>, and where each response starts."""
    ids, starts = [], []
    for row in rows:
        prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        response = tokenizer(row["response"], add_special_tokens=False)["input_ids"]
        ids.append(prompt + response + [tokenizer.eos_token_id])
        starts.append(len(prompt))
    return ids, starts


def micro_batches(pick: list[int], lengths: list[int], starts: list[int], parts: int) -> list[tuple[list[int], float]]:
    """A batch's rows as `parts` runs of similar length (sorted by length, cut into near-equal runs), each with
    the weight that makes the sum of the runs' mean losses the batch's mean loss: its response tokens (the
    positions the loss counts, `length - start`) over the batch's. One part is the batch as it came, unsorted,
    so that a build without parts is the one it always was."""
    if parts == 1:
        return [(pick, 1.0)]
    rows = sorted(pick, key=lambda i: lengths[i])
    tokens = sum(lengths[i] - starts[i] for i in rows)
    cuts = [round(k * len(rows) / parts) for k in range(parts + 1)]
    runs = [rows[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
    return [(run, sum(lengths[i] - starts[i] for i in run) / tokens) for run in runs]


def train_step(model, optimizer, ids: list[list[int]], starts: list[int], lengths: list[int], pick: list[int],
               parts: int, pad_id: int, device: str = "cpu") -> float:
    """One optimizer step on the batch `pick`, run as `parts` micro-batches (`micro_batches`); the batch's loss."""
    loss = 0.0
    for run, weight in micro_batches(pick, lengths, starts, parts):
        batch = batch_tensors([ids[i] for i in run], [starts[i] for i in run], pad_id)
        run_loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        (run_loss * weight).backward()  # weight 1.0 for one part: the same gradient, bit for bit
        loss += run_loss.item() * weight
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def batch_tensors(ids: list[list[int]], starts: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), pad_id)
    labels = torch.full((len(ids), width), -100)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, (seq, start) in enumerate(zip(ids, starts)):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, start : len(seq)] = torch.tensor(seq[start:])
        mask[i, : len(seq)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def pass_rates(model, tokenizer, problems: int, samples: int, max_new_tokens: int, seed: int,
               world: str = "v6") -> dict[str, dict[str, float]]:
    """Greedy accuracy, sampled pass rate and mean token entropy (nats, temperature 1) on each family's test
    split; outside v6 also pass@k (k = `samples`: a problem passes when one of its samples does) and the
    samples' mean try/check share (`heal_hf.toy.explore`)."""
    from heal_hf.app.evaluation import greedy_completions
    from heal_hf.data.rollout import sample_with_entropies

    model.eval()
    rates = {}
    for name in tasks.world_families(world):
        family = tasks.get_family(name)
        rows = family.generate(problems, split="test", seed=seed)
        prompts, answers = [r["prompt"] for r in rows], [r["answer"] for r in rows]
        greedy = greedy_completions(model, tokenizer, prompts, max_new_tokens, chat_template=False, batch_size=64)
        sampled = sample_with_entropies(model, tokenizer, prompts, num_samples=samples,
                                        max_new_tokens=max_new_tokens, temperature=1.0, seed=seed)
        rates[name] = {
            "domain": family.domain,
            "greedy_accuracy": sum(family.verify(c, a) for c, a in zip(greedy, answers)) / len(rows),
            "sampled_pass_rate": sum(family.verify(t, a) for texts, a in zip(sampled.texts, answers) for t in texts)
            / (len(rows) * samples),
            "mean_token_entropy": sum(map(sum, sampled.flat_entropies()))
            / max(1, sum(map(len, sampled.flat_entropies()))),
        }
        if world != "v6":
            rates[name]["pass_at_k"] = sum(any(family.verify(t, a) for t in texts)
                                           for texts, a in zip(sampled.texts, answers)) / len(rows)
            rates[name]["try_check_share"] = explore.try_check_share(t for texts in sampled.texts for t in texts)
    return rates


def device_name(device: str) -> str:
    """Where training ran, for the card: the GPU's name, or the CPU thread count."""
    if device.startswith("cuda"):
        return f"one {torch.cuda.get_device_name(torch.device(device))} GPU"
    threads = torch.get_num_threads()
    return f"CPU ({threads} torch thread{'s' if threads > 1 else ''})"


def model_card(args: argparse.Namespace, params: int, rates: dict, runtime: float, final_loss: float,
               hardware: str) -> str:
    from huggingface_hub import ModelCardData

    data = ModelCardData(
        license="apache-2.0", library_name="transformers", pipeline_tag="text-generation",
        tags=["heal", "rlvr", "toy", "reasoning", "llama"], datasets=["heal/general-entropy-pool"],
    )
    world = getattr(args, "world", "v6")
    explored = world != "v6"  # world v6's card stays as it was
    table = "\n".join(
        f"| {name} | {r['domain']} | {r['greedy_accuracy']:.1%} | {r['sampled_pass_rate']:.1%} | "
        + (f"{r['pass_at_k']:.1%} | {r['try_check_share']:.3f} | " if explored else "")
        + f"{r.get('mean_token_entropy', float('nan')):.3f} |"
        for name, r in rates.items()
    )
    counts = ", ".join(f"{name} {n}" for name, n in args.target_examples.items())
    flags = " ".join(f"{name}={n}" for name, n in args.target_examples.items())
    families = "\n".join(f"- `{f.name}` ({f.domain}): {f.about}" for f in map(tasks.get_family, tasks.world_families(world)))
    example = tasks.generate("addition", 1, split="test")[0]
    header = ("| family | domain | greedy | sampled (T=1) | pass@" f"{args.eval_samples} | try/check share | entropy (nats) |\n"
              "|---|---|---|---|---|---|---|" if explored else
              "| family | domain | greedy | sampled (T=1) | entropy (nats) |\n|---|---|---|---|---|")
    direct, share = direct_first_try_of(args), by_family(args.target_try_share, TARGET_TRY_SHARE, world)
    world_text = "" if not explored else f"""
World `{world}` (`heal_hf.toy.tasks.WORLDS`): the target families are searches whose first
guess often fails, and the general domain's search families are worked by trying a
candidate, checking it and revising (`heal_hf.toy.explore`). Every general problem keeps its
worked try/check solution; a target problem keeps its own with probability {_per_family(share, ' ')} and the
rest answer directly, committing without working to the search's first try (right about half the time)
with probability {_per_family(direct, ' ')}, otherwise to the accepted candidate, so the model has the behaviour but uses it less in the target.{_uninformed_text(args)}

```text
{"".join(r['prompt'] + r['response'] + chr(10) for r in (tasks.generate("missing_addend", 1, split="test")[0],
                                                       tasks.generate(tasks.world_families(world, tasks.TARGET)[0], 1, split="test")[0]))}```
"""
    general_examples = getattr(args, "general_examples", None) or {}  # absent from older summaries
    world_flags = f" --world {world} --target-try-share {_per_family(share, '=')} --direct-first-try {_per_family(direct, '=')}" if explored else ""
    if general_examples:
        world_flags += " --general-examples " + " ".join(f"{k}={v}" for k, v in general_examples.items())
    if getattr(args, "uninformed", None):  # absent from older summaries
        world_flags += " --uninformed " + " ".join(args.uninformed)
    if getattr(args, "target_draws", None):  # absent from older summaries
        world_flags += " --target-draws " + " ".join(f"{k}={v}" for k, v in args.target_draws.items())
    if getattr(args, "micro_batches", 1) > 1:  # absent from older summaries
        world_flags += f" --micro-batches {args.micro_batches}"
    general_counts = f"{args.general_per_family} problems each" + (
        "".join(f", {name} {count}" for name, count in general_examples.items()))
    measured = (f", pass@{args.eval_samples} (one of the samples passes) and the samples' try/check share "
                "(try/check steps over all steps, the answer counting as one)" if explored else "")
    text = f"""---
{data.to_yaml()}
---

# heal/toy-reasoner

A {params / 1e6:.2f}M-parameter Llama with a character tokenizer, trained from scratch
to solve small verifiable reasoning tasks step by step. It is heal-hf's bundled model: the
`heal-hf demo` few-shot HEAL run, the replication benchmark (`heal-hf replicate`), the
general-entropy pool and the Entropy Explorer Space all use it, offline.

## Tasks

Prompts read `Q: <question>\\nA:`; responses work step by step and end in `Answer: <answer>`.
{families}

General-domain families make up most of the training mix ({general_counts},
each worked in one of several valid ways drawn at random); each target
family contributes only a few hundred examples ({counts}), so the model knows those
formats only partly and RL has room to help.
{world_text}
```text
{example['prompt']}{example['response']}
```

## Pass rates on the test splits ({args.eval_problems} problems a family)

Greedy accuracy, the pass rate of {args.eval_samples} samples a problem at temperature 1
(what RL sees){measured} and those samples' mean token entropy, measured by the training script at
the end of training.

{header}
{table}

## Use

```python
from heal_hf.toy import load_toy_reasoner

model, tokenizer = load_toy_reasoner()
ids = tokenizer({example['prompt']!r}, return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, max_new_tokens={tasks.COMPLETION_BUDGETS[world]}, do_sample=False)[0]))
```

`AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` on this
folder (or on `heal/toy-reasoner` once published) work the same way.

## Training

`python datasets_scripts/train_toy_reasoner.py --steps {args.steps} --hidden-size {args.hidden_size}
--layers {args.layers} --heads {args.heads} --batch-size {args.batch_size} --lr {args.lr}
--general-per-family {args.general_per_family} --target-examples {flags} --seed {args.seed}{f" --threads {args.threads}" if args.threads else ""}{world_flags}`:
{args.steps} AdamW steps (cosine schedule, warm-up {args.warmup}), loss on the response
tokens only; {runtime / 60:.1f} minutes of training on {hardware}; final training
loss {final_loss:.3f}. The weights in this folder are exactly what that command wrote there
(this card is regenerated from its training_summary.json by `--card-only`). MANIFEST.json
pins every file's sha256 (heal-hf checks it at load).
"""
    return text


def rewrite_card(folder: Path) -> int:
    """Regenerate the card of a trained folder (after a change of the card's template), then its manifest."""
    summary = json.loads((folder / "training_summary.json").read_text())
    args = argparse.Namespace(**summary["args"])
    text = model_card(args, summary["parameters"], summary["pass_rates"], summary["runtime_s"], summary["final_loss"],
                      summary.get("hardware", args.device))
    (folder / "README.md").write_text(text)
    write_manifest(folder)
    print(f"rewrote {folder / 'README.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default="v6", choices=tuple(tasks.WORLDS), help="toy world (default v6, the bundled reasoner's)")
    parser.add_argument("--out", default=None, help="model folder (default: the bundled toy reasoner for v6, build/explore-reasoner for explore)")
    parser.add_argument("--target-try-share", nargs="*", default=[], metavar="P|NAME=P",
                        help="world explore: probability that a target training problem keeps its worked try/check "
                             f"solution, for every target family or NAME=P for one (default {TARGET_TRY_SHARE})")
    parser.add_argument("--direct-first-try", nargs="*", default=[], metavar="P|NAME=P",
                        help="world explore: probability that a direct target answer commits to the search's first try "
                             f"rather than the accepted candidate, for every target family or NAME=P for one "
                             f"(default {DIRECT_FIRST_TRY}, H15; 0 is H10-H14's)")
    parser.add_argument("--uninformed", nargs="*", default=[], metavar="NAME",
                        help="world explore: target searches (gym_countdown, pair_sum) whose worked searches try "
                             "candidates in an order that knows nothing of the answer and whose direct answers guess "
                             "a value drawn uniformly, so that no guess's mode is the answer (H36; default none)")
    parser.add_argument("--steps", type=int, default=1700, help="optimizer steps (default 1700)")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step (default 64)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (default 3e-3)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up steps (default 100)")
    parser.add_argument("--hidden-size", type=int, default=128, help="model width (default 128)")
    parser.add_argument("--layers", type=int, default=4, help="transformer layers (default 4)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--general-per-family", type=int, default=2500, help="train problems per general family (default 2500)")
    parser.add_argument("--general-examples", nargs="*", default=[], metavar="NAME=COUNT",
                        help="train problems of a general family, where it differs from --general-per-family")
    parser.add_argument("--target-examples", nargs="*", default=[], metavar="NAME=COUNT",
                        help=f"train problems of a target family (default {TARGET_EXAMPLES})")
    parser.add_argument("--target-draws", nargs="*", default=[], metavar="NAME=K",
                        help="world explore: draw a target family's examples as K draws of count / K distinct problems "
                             "(a problem recurs with other guesses and searches), for a family whose train split holds "
                             "fewer than its count (default 1 each: H31)")
    parser.add_argument("--micro-batches", type=int, default=1, metavar="M",
                        help="run each batch as M parts of rows of similar length, weighted to the batch's gradient: "
                             "less padding, faster on CPU (default 1: one padded batch, as every model before H23)")
    parser.add_argument("--eval-problems", type=int, default=100, help="test problems per family for the pass rates (default 100)")
    parser.add_argument("--eval-samples", type=int, default=8, help="samples per test problem (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="data, init and sampling seed (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, one per core)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--card-only", action="store_true",
                        help="only rewrite README.md and MANIFEST.json of the model in --out from its training_summary.json")
    args = parser.parse_args(argv)
    args.out = args.out or DEFAULT_OUT[args.world]
    if not 1 <= args.micro_batches <= args.batch_size:
        parser.error(f"--micro-batches {args.micro_batches}: give a number from 1 (off) to --batch-size ({args.batch_size})")
    if args.card_only:
        return rewrite_card(Path(args.out))
    args.direct_first_try = parse_direct_first_try(args.direct_first_try, args.world)
    args.target_try_share = parse_target_try_share(args.target_try_share, args.world)
    args.target_draws = parse_target_draws(args.target_draws, args.world)  # refused before the model is built
    args.uninformed = parse_uninformed(args.uninformed, args.world, args.direct_first_try)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, tokenizer = tiny_causal_lm(seed=args.seed, hidden_size=args.hidden_size, num_layers=args.layers,
                                      num_heads=args.heads, max_positions=256)
    model.to(args.device)
    params = sum(p.numel() for p in model.parameters())
    args.target_examples = parse_target_examples(args.target_examples, args.world)
    args.general_examples = parse_general_examples(args.general_examples, args.world)
    rows = training_rows(args.general_per_family, args.target_examples, args.seed, args.world, args.target_try_share,
                         args.general_examples, args.direct_first_try, args.target_draws, args.uninformed)
    if args.world != "v6" and not all(explore.fits(r["response"]) for r in rows):
        raise SystemExit(f"a worked solution does not fit the {explore.SOLUTION_BUDGET}-token solution budget")
    ids, starts = encode(rows, tokenizer)
    lengths = [len(seq) for seq in ids]
    print(f"toy reasoner: {params / 1e6:.2f}M parameters, {len(rows)} training problems, {args.steps} steps")

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / args.warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / args.steps))))
    order = random.Random(args.seed)
    indices: list[int] = []
    model.train()
    started, loss_ema = time.perf_counter(), None
    with tqdm(range(args.steps), desc="training", unit="step") as bar:
        for step in bar:
            if len(indices) < args.batch_size:
                fresh = list(range(len(ids)))
                order.shuffle(fresh)
                indices += fresh
            pick, indices = indices[: args.batch_size], indices[args.batch_size :]
            loss = train_step(model, optimizer, ids, starts, lengths, pick, args.micro_batches,
                              tokenizer.pad_token_id, args.device)
            schedule.step()
            loss_ema = loss if loss_ema is None else 0.98 * loss_ema + 0.02 * loss
            bar.set_postfix(loss=f"{loss_ema:.3f}")
    runtime = time.perf_counter() - started

    rates = pass_rates(model, tokenizer, args.eval_problems, args.eval_samples, tasks.COMPLETION_BUDGETS[args.world], args.seed,
                       args.world)
    explored = any("pass_at_k" in r for r in rates.values())
    print(f"{'family':<20}{'domain':<9}{'greedy':>8}{'sampled':>9}"
          + (f"{f'pass@{args.eval_samples}':>9}{'tries':>8}" if explored else ""))
    for name, r in rates.items():
        extra = f"{r['pass_at_k']:>9.1%}{r['try_check_share']:>8.3f}" if "pass_at_k" in r else ""
        print(f"{name:<20}{r['domain']:<9}{r['greedy_accuracy']:>8.1%}{r['sampled_pass_rate']:>9.1%}{extra}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    model.cpu().save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    hardware = device_name(args.device)
    (staging / "README.md").write_text(model_card(args, params, rates, runtime, loss_ema, hardware))
    (staging / "training_summary.json").write_text(json.dumps(
        {"parameters": params, "runtime_s": runtime, "final_loss": loss_ema, "pass_rates": rates,
         "hardware": hardware, "args": vars(args)}, indent=2) + "\n")
    write_manifest(staging)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    print(f"saved: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
