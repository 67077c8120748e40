"""The `heal-hf` command. Each subcommand is a (parser, run) pair registered below."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=int, default=8, help="responses sampled per prompt (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="tokens per response (default 48)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def _demo(args: argparse.Namespace) -> int:
    import torch

    from .eda import EDAReward
    from .rollout import sample_with_entropies
    from .toy.tiny import tiny_causal_lm

    model, tok = tiny_causal_lm(seed=args.seed)
    general = ["Q: 12 + 7 = ?\nA:", "Q: 3 * 9 = ?\nA:", "Q: 45 - 18 = ?\nA:"]
    target = ["Q: sort 3 1 2\nA:", "Q: reverse abc\nA:"]
    kw = dict(num_samples=args.samples, max_new_tokens=args.max_new_tokens, seed=args.seed)
    ref = sample_with_entropies(model, tok, general, **kw)
    tgt = sample_with_entropies(model, tok, target, **kw)
    eda = EDAReward(ref.flat_entropies())
    scores = eda.score(tgt.flat_entropies())
    # A collapsed trajectory for contrast: what entropy collapse looks like to EDA.
    collapsed = eda.score(torch.full((1, args.max_new_tokens), 0.01))
    print(f"reference: {len(ref.flat_entropies())} general-domain responses, "
          f"magnitude {eda.reference.magnitude_mean:.3f} +- {eda.reference.magnitude_std:.3f} nats")
    print(f"{'trajectory':<28}{'len':>5}{'magnitude':>11}{'mag gap':>9}{'dyn gap':>9}{'r_EDA':>8}")
    for i, text in enumerate(t for per in tgt.texts for t in per):
        print(f"{text[:26]!r:<28}{int(scores.profile.lengths[i]):>5}{float(scores.profile.magnitude[i]):>11.3f}"
              f"{float(scores.magnitude_gap[i]):>9.2f}{float(scores.dynamics_gap[i]):>9.2f}{float(scores.reward[i]):>8.3f}")
    print(f"{'(collapsed, H=0.01)':<28}{args.max_new_tokens:>5}{0.01:>11.3f}"
          f"{float(collapsed.magnitude_gap[0]):>9.3g}{float(collapsed.dynamics_gap[0]):>9.2f}{float(collapsed.reward[0]):>8.2g}")
    return 0


def _build_pool_args(p: argparse.ArgumentParser) -> None:
    import dataclasses

    from .pool import POOL_REPO_ID, PoolBuildConfig
    from .verifiers import VERIFIERS

    p.add_argument("--model", required=True, help="a causal LM: local folder or Hub id")
    p.add_argument("--dataset", required=True, help="prompts: a .json/.jsonl/.csv/.parquet file, a folder or a Hub id")
    p.add_argument("--split", default="train", help="dataset split (default train; files have only train)")
    p.add_argument("--dataset-config", default=None, help="dataset configuration name on the Hub (e.g. main)")
    p.add_argument("--out", required=True, help="build folder: new or empty, or an earlier build to resume")
    p.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    for f in dataclasses.fields(PoolBuildConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"]
        if "default" not in help_text:
            help_text += f" (default {f.default})"
        if isinstance(f.default, bool):
            p.add_argument(flag, action="store_true", help=help_text)
        else:
            kind = type(f.default) if f.default is not None else str
            choices = sorted(VERIFIERS) if f.name == "verifier" else None
            p.add_argument(flag, type=kind, default=f.default, choices=choices, help=help_text)
    p.add_argument("--model-id", default=None,
                   help="the model name recorded in the rows and card (default: --model, a folder's name)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: the process's accelerator, else cpu)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="model weights dtype (default auto: the checkpoint's)")
    p.add_argument("--repo-id", default=POOL_REPO_ID, help=f"the Hub id the dataset card names (default {POOL_REPO_ID})")
    p.add_argument("--license", default=None, help="the data's license id for the card (default: kept, else other)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _build_pool(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from .pool import PoolBuildConfig, build_pool, load_causal_lm, load_prompt_dataset, process_layout

    # Under `accelerate launch` each process builds its share of the shards (see build_pool).
    process_index, num_processes, process_device = process_layout()
    device = args.device or process_device
    config = PoolBuildConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PoolBuildConfig)})
    config.validate()
    dataset = load_prompt_dataset(args.dataset, split=args.split, config_name=args.dataset_config)
    if args.limit is not None:
        dataset = dataset.select(range(min(args.limit, len(dataset))))
    model, tokenizer = load_causal_lm(args.model, device=device, dtype=args.dtype)
    source = Path(args.dataset)
    dataset_id = source.name if source.exists() else args.dataset  # no local paths in a published card
    out = build_pool(
        model, tokenizer, dataset, args.out, config,
        model_id=args.model_id or (Path(args.model).name if Path(args.model).exists() else args.model),
        dataset_id=dataset_id,
        process_index=process_index,
        num_processes=num_processes,
        progress=not args.no_progress,
        repo_id=args.repo_id,
        license=args.license,
    )
    if process_index == 0:
        print(f"pool: {out} ({len(dataset)} prompts); load it with datasets.load_dataset({str(out)!r})")
    return 0


def _repo_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", default="heal", help="Hub user or organization for every repo (default heal)")
    p.add_argument("--pool", default=None, help="pool build folder (default: the bundled pool)")
    p.add_argument("--toy", default=None, help="toy reasoner folder (default: the bundled one, once it exists)")
    p.add_argument("--space", default=None, help="Entropy Explorer Space folder (default: spaces/entropy-explorer)")


def _stage_hub_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="staging folder; repos go to OUT/{datasets,spaces,models}/NAMESPACE/NAME")
    _repo_source_args(p)


def _stage_hub(args: argparse.Namespace) -> int:
    from .hub import stage_hub

    staged, skipped = stage_hub(args.out, args.namespace, args.pool, args.toy, args.space)
    for repo in staged:
        print(f"staged {repo.repo_type} {repo.repo_id}: {len(repo.files)} files in {repo.folder}")
    for line in skipped:
        print(f"skipped {line}")
    return 0


def _publish_args(p: argparse.ArgumentParser) -> None:
    _repo_source_args(p)
    p.add_argument("--private", action="store_true", help="create the repos as private")
    p.add_argument("--dry-run", action="store_true", help="print what would be uploaded; contact no server")
    p.add_argument("--staged", default=None, help="stage into this folder and keep it (default: a temporary one)")


def _publish(args: argparse.Namespace) -> int:
    from .hub import publish

    publish(args.namespace, private=args.private, dry_run=args.dry_run, pool_dir=args.pool, toy_dir=args.toy,
            explorer_dir=args.space, staged_dir=args.staged)
    return 0


def _space_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="default model: a local folder or Hub id of a causal LM (default: the bundled toy reasoner)")
    p.add_argument("--host", default=None, help="interface to serve on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or the first free from 7860)")


def _space(args: argparse.Namespace) -> int:
    from .space import launch

    launch(args.model, server_name=args.host, server_port=args.port)  # a model that cannot load: ValueError
def _train_args(p: argparse.ArgumentParser) -> None:
    import dataclasses

    from .train import TRAINING_OPTIONS, TrainSettings, training_defaults

    p.add_argument("--config", help="YAML file of options: any option below (underscores), or any HEALConfig / "
                   "GRPOConfig field; the command line wins (default: none)")
    for f in dataclasses.fields(TrainSettings):
        help_text = f.metadata["help"]
        if f.default is dataclasses.MISSING:
            help_text += " (required)"
        elif "default:" not in help_text:
            help_text += f" (default: {f.default})"
        kind = {"bool": None, "int | None": int, "int": int, "float": float}.get(str(f.type), str)
        flag = "--" + f.name.replace("_", "-")
        if kind is None:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            p.add_argument(flag, type=kind, default=None, help=help_text)
    defaults = training_defaults()
    for name, help_text in TRAINING_OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        value = defaults[name]
        if "default:" not in help_text:
            help_text += f" (default: {value})"
        if isinstance(value, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = float if value is None or isinstance(value, float) else type(value)
            p.add_argument(flag, type=kind, default=None, help=help_text)


def _train(args: argparse.Namespace) -> int:
    from .train import TrainSettings, read_config, split_options, train

    options = read_config(args.config)
    options.update({k: v for k, v in vars(args).items() if v is not None and k not in ("config", "command", "_run")})
    settings, overrides = split_options(options)
    for required in ("target", "output_dir"):
        if required not in settings:
            raise ValueError(f"{required}: missing; pass --{required.replace('_', '-')} or set it in --config")
    result = train(TrainSettings(**settings), overrides)
    if not result.main_process:
        return 0
    print(f"saved to {result.output_dir} (model card README.md, metrics.json, entropy_curves.png)")
    for split, values in result.metrics.get("eval", {}).items():
        print(f"eval ({split}): " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
    if result.pushed_url:
        print(f"pushed: {result.pushed_url}")
    return 0


def _card_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a heal-hf train output folder, or a checkpoint-N folder inside one")
    p.add_argument("--repo-id", default=None, help="Hub repo id the snippet loads from (default: the folder itself)")


def _card(args: argparse.Namespace) -> int:
    from .cards import write_model_card

    print(f"wrote {write_model_card(args.checkpoint, repo_id=args.repo_id)}")
    return 0


COMMANDS: list[Command] = [
    ("demo", "sample a tiny model, profile its entropy dynamics and score them with EDA", _demo_args, _demo),
    ("build-pool", "build (or resume) a general-entropy pool: sampled responses, entropies, profiles, card",
     _build_pool_args, _build_pool),
    ("stage-hub", "write the Hub repo folders (pool dataset, evaluate Spaces, toy reasoner, explorer Space)",
     _stage_hub_args, _stage_hub),
    ("publish", "create the Hub repos and upload the staged folders (token from HF_TOKEN or `hf auth login`)",
     _publish_args, _publish),
    ("space", "serve the Entropy Explorer (the Gradio Space) locally", _space_args, _space),
    ("train", "few-shot HEAL: select general problems from a pool, train with GRPO + EDA, evaluate, save a card",
     _train_args, _train),
    ("card", "(re)generate the model card and entropy-curve figure of a heal-hf train run or checkpoint",
     _card_args, _card),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heal-hf", description="HEAL for few-shot RLVR on Hugging Face")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add_args, run in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args._run(args)
    except ValueError as err:  # our clear input errors: one line, no traceback
        print(f"heal-hf {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
