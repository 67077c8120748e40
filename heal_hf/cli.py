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


def _space_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="default model: a local folder or Hub id of a causal LM (default: the bundled toy reasoner)")
    p.add_argument("--host", default=None, help="interface to serve on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or the first free from 7860)")


def _space(args: argparse.Namespace) -> int:
    from .space import launch

    launch(args.model, server_name=args.host, server_port=args.port)  # a model that cannot load: ValueError
    return 0


COMMANDS: list[Command] = [
    ("demo", "sample a tiny model, profile its entropy dynamics and score them with EDA", _demo_args, _demo),
    ("space", "serve the Entropy Explorer (the Gradio Space) locally", _space_args, _space),
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
