"""Build heal-hf's general-entropy pool: the toy reasoner's rollouts on general-domain toy problems.

    python datasets_scripts/build_general_entropy_pool.py [--per-family 200] [--out DIR] [--model DIR]
    accelerate launch --multi_gpu --num_processes 2 datasets_scripts/build_general_entropy_pool.py ...
    python datasets_scripts/build_general_entropy_pool.py --world explore --model build/explore-reasoner --out build/explore-pool

Draws `--per-family` distinct train-split problems from each general-domain task family
of `heal_hf.toy.tasks` (arithmetic and number reasoning; the source column names the
family), samples k responses per problem with the bundled toy reasoner and writes the
pool with `heal_hf.app.pool_build.build_pool`: parquet shards, resumable (re-run the same command
after an interruption), split over the processes of `accelerate launch`, then finalized
with the pool scores and a dataset card. The default output is the pool bundled with
heal-hf (`heal_hf.data.pool.bundled_pool_path()`), which `heal-hf stage-hub` publishes as
`heal/general-entropy-pool`.

`--world explore` draws the general families of the toy world explore
(`heal_hf.toy.tasks.WORLDS`: addition, multiplication and the try/check searches
missing_addend and missing_subtrahend) and needs `--model` and `--out` (the bundled
reasoner and pool are world v6's).
"""

from __future__ import annotations

import argparse
import sys

import datasets

from heal_hf.app.pool_build import build_pool, process_layout
from heal_hf.data.models import load_causal_lm
from heal_hf.data.pool import PoolBuildConfig, bundled_pool_path

TOY_REASONER_ID = "heal/toy-reasoner"
V6_POOL_TOKENS = 64
"""Tokens per response of the bundled (world v6) pool, as it was built."""


def general_problems(per_family: int, split: str, seed: int, world: str = "v6") -> datasets.Dataset:
    """`per_family` problems of each general-domain family of a toy world: prompt, answer, family; outside v6
    (whose families are all numeric) also each row's verifier, its family's (explore's missing_operator: exact, pair_sums: one_of)."""
    from heal_hf.toy.tasks import GENERAL, generate, get_family, world_families

    rows = [row for family in world_families(world, GENERAL) for row in generate(family, per_family, split=split, seed=seed)]
    columns = {key: [row[key] for row in rows] for key in ("prompt", "answer", "family")}
    if world != "v6":
        columns["verifier"] = [get_family(row["family"]).verifier for row in rows]
    return datasets.Dataset.from_dict(columns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default="v6", choices=("v6", "explore"), help="toy world (default v6, the bundled pool's)")
    parser.add_argument("--out", default=None, help="pool folder (default: the bundled pool; required outside v6)")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled toy reasoner)")
    parser.add_argument("--model-id", default=None,
                        help=f"model name in the rows (default: the model's Hub id, {TOY_REASONER_ID} for the bundled "
                             "reasoner, else its folder's name)")
    parser.add_argument("--per-family", type=int, default=200, help="problems per general family (default 200)")
    parser.add_argument("--split", default="train", choices=["train", "test"], help="toy task split (default train)")
    parser.add_argument("--samples-per-prompt", type=int, default=8, help="k (default 8)")
    parser.add_argument("--bins", type=int, default=32, help="K (default 32)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help=f"tokens per response (default: {V6_POOL_TOKENS} in world v6, the bundled pool's; elsewhere "
                             "the world's RL completion budget, heal_hf.toy.tasks.COMPLETION_BUDGETS)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="problem draw and sampling seed (default 0)")
    parser.add_argument("--shard-size", type=int, default=64, help="prompts per shard (default 64)")
    parser.add_argument("--batch-size", type=int, default=256, help="sequences per generate call (default 256)")
    args = parser.parse_args(argv)
    if args.world != "v6" and (args.out is None or args.model is None):
        parser.error(f"--world {args.world} needs --model and --out: the bundled reasoner and pool are world v6's")
    args.out = args.out or str(bundled_pool_path())

    from heal_hf.toy import TOY_REASONER_PATH
    from heal_hf.toy.tasks import COMPLETION_BUDGETS

    if args.max_new_tokens is None:  # the pool holds the samples an RL run of the world would draw
        args.max_new_tokens = V6_POOL_TOKENS if args.world == "v6" else COMPLETION_BUDGETS[args.world]

    process_index, num_processes, device = process_layout()
    model, tokenizer = load_causal_lm(args.model or TOY_REASONER_PATH, device=device, dtype="float32")
    problems = general_problems(args.per_family, args.split, args.seed, args.world)
    config = PoolBuildConfig(
        samples_per_prompt=args.samples_per_prompt, bins=args.bins, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, seed=args.seed, verifier="numeric", source_column="family",
        verifier_column=None if args.world == "v6" else "verifier",
        shard_size=args.shard_size, batch_size=args.batch_size,
    )
    world = "" if args.world == "v6" else f"--world {args.world} --model {args.model} "
    command = (
        f"python datasets_scripts/build_general_entropy_pool.py {world}--per-family {args.per_family} --split {args.split} "
        f"--samples-per-prompt {args.samples_per_prompt} --bins {args.bins} --max-new-tokens {args.max_new_tokens} "
        f"--temperature {args.temperature} --seed {args.seed} --shard-size {args.shard_size} "
        f"--batch-size {args.batch_size}"
    )
    out = build_pool(
        model, tokenizer, problems, args.out, config, model_id=args.model_id,
        dataset_id=f"heal-hf toy general-domain tasks ({args.split} split{'' if args.world == 'v6' else ', world ' + args.world})",
        process_index=process_index,
        num_processes=num_processes, license="apache-2.0", command=command,
    )
    if process_index == 0:
        print(f"pool: {out} ({len(problems)} problems x {args.samples_per_prompt} responses)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
