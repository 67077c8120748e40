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
