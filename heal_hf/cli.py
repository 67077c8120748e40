"""The `heal-hf` command. Each subcommand is a (parser, run) pair registered below.

Options that mirror a settings dataclass (or HEALConfig fields) are added by one helper,
`_add_option`: every such flag defaults to None, meaning "not given", so that a --config
file or the --quick preset can sit under the command line. transformers' HfArgumentParser
cannot do that, nor take several values for a tuple field, nor offer --no-X for a
boolean that defaults to False.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from pathlib import Path
from typing import Any, Callable, Sequence

Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _add_option(
    parser: argparse.ArgumentParser, name: str, hint: Any, default: Any, help_text: str,
    choices: Sequence[Any] | None = None,
) -> None:
    """Add --NAME (default None: not given) for a setting of type `hint`; its help ends with `default`.

    A bool is --NAME / --no-NAME; a tuple or list takes one or more values; X | None takes an X.
    """
    help_text = help_text.replace("%", "%%")  # argparse formats help with %: a literal one must be doubled
    if default is dataclasses.MISSING:
        help_text += " (required)"
    elif "(default" not in help_text:
        help_text += f" (default: {' '.join(map(str, default)) if isinstance(default, tuple) else default})"
    flag = "--" + name.replace("_", "-")
    args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
    several = typing.get_origin(hint) in (tuple, list)
    kind = args[0] if args else hint
    if kind is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    else:
        parser.add_argument(flag, type=kind, nargs="+" if several else None, default=None, choices=choices,
                            help=help_text)


def _add_fields(parser: argparse.ArgumentParser, cls: type, choices: dict[str, Sequence[Any]] | None = None) -> None:
    """One `_add_option` per field of the dataclass `cls`, its help from the field's metadata."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        _add_option(parser, f.name, hints[f.name], f.default, f.metadata["help"], (choices or {}).get(f.name))


def _given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of the dataclass `cls` given on the command line (several values as a tuple)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if v is not None}


def _demo_args(p: argparse.ArgumentParser) -> None:
    from .experiments.demo import DEMO_STEPS
    from .toy.tasks import TARGET_FAMILIES

    p.add_argument("--target", default="sort_digits", choices=TARGET_FAMILIES, help="target task family (default sort_digits)")
    p.add_argument("--output-dir", default=None, help="folder for both runs, the curves and the numbers "
                   "(default: a new runs/demo-<target>-<time>)")
    p.add_argument("--shots", type=int, default=32, help="target-domain training examples (default 32)")
    p.add_argument("--steps", type=int, default=DEMO_STEPS, help=f"GRPO steps (default {DEMO_STEPS})")
    p.add_argument("--eval-problems", type=int, default=100, help="held-out test problems (default 100)")
    p.add_argument("--eval-samples", type=int, default=4, help="k of pass@k (default 4)")
    p.add_argument("--eda-weight", type=float, default=None, help="lambda of HEAL's EDA reward (default: the replication's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the 32 examples, selection and training (default 0)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo in --output-dir")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the toy model gains nothing from more)")


def _demo(args: argparse.Namespace) -> int:
    from .experiments.demo import run_demo, summary_table

    if args.resume and not args.output_dir:
        raise ValueError("resume: pass the --output-dir of the demo to continue")
    out, results = run_demo(args.target, args.output_dir, shots=args.shots, steps=args.steps,
                            eval_problems=args.eval_problems, eval_samples=args.eval_samples, seed=args.seed,
                            eda_weight=args.eda_weight, resume=args.resume, threads=args.threads)
    print(f"\nfew-shot RL on {args.target}: {args.shots} target examples, {args.steps} steps each, same start and "
          "settings;\ngrpo-32 = plain GRPO, heal-32 = + 96 selected general problems and the EDA reward")
    print(summary_table(results))
    print(f"\nsaved to {out}: grpo-32/ and heal-32/ (model, model card, metrics), curves.png, demo.json, "
          "<arm>.train.log")
    return 0


def _replicate_args(p: argparse.ArgumentParser) -> None:
    from .experiments.replicate import ARMS, QUICK, ReplicateSettings
    from .toy.tasks import ALL_TARGET_FAMILIES

    _add_fields(p, ReplicateSettings, choices={"families": ALL_TARGET_FAMILIES, "arms": tuple(ARMS)})
    p.add_argument("--quick", action="store_true",
                   help="smoke test: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()) + " (explicit options win)")


def _replicate(args: argparse.Namespace) -> int:
    from .experiments.replicate import QUICK, ReplicateSettings, replicate
    from .experiments.report import intervals_table, results_table

    settings = ReplicateSettings(**{**(QUICK if args.quick else {}), **_given(args, ReplicateSettings)})
    results = replicate(settings)
    if not settings.report:
        return 0
    print(results_table(results))
    if any(results.get("intervals", {}).values()):
        print("\n95% paired bootstrap intervals (results.md):\n" + intervals_table(results))
    out = Path(settings.output_dir)
    print(f"\nwrote {out / 'results.md'}, {out / 'results.json'}, {out / 'curves.png'} ({results['wall_s']:.0f} s)")
    return 0


def _build_pool_args(p: argparse.ArgumentParser) -> None:
    from .core.verifiers import VERIFIERS
    from .data.pool import POOL_REPO_ID
    from .data.pool_shards import POOL_BACKENDS, PoolBuildConfig

    p.add_argument("--model", required=True, help="a causal LM: local folder or Hub id")
    p.add_argument("--dataset", required=True, help="prompts: a .json/.jsonl/.csv/.parquet file, a folder or a Hub id")
    p.add_argument("--split", default="train", help="dataset split (default train; files have only train)")
    p.add_argument("--dataset-config", default=None, help="dataset configuration name on the Hub (e.g. main)")
    p.add_argument("--out", required=True, help="build folder: new or empty, or an earlier build to resume")
    p.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    _add_fields(p, PoolBuildConfig, choices={"verifier": sorted(VERIFIERS), "backend": POOL_BACKENDS})
    p.add_argument("--model-id", default=None,
                   help="the model name recorded in the rows and card (default: its Hub id, else the folder's name)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: the process's accelerator, else cpu)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="model weights dtype (default auto: the checkpoint's)")
    p.add_argument("--repo-id", default=POOL_REPO_ID, help=f"the Hub id the dataset card names (default {POOL_REPO_ID})")
    p.add_argument("--license", default=None, help="the data's license id for the card (default: kept, else other)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _build_pool(args: argparse.Namespace) -> int:
    from .app.pool_build import build_pool, load_prompt_dataset, process_layout
    from .data.model_identity import hub_model_id
    from .data.models import load_causal_lm
    from .data.pool_shards import PoolBuildConfig
    from .data.rollout import check_vllm

    # Under `accelerate launch` each process builds its share of the shards (see build_pool).
    process_index, num_processes, process_device = process_layout()
    device = args.device or process_device
    config = PoolBuildConfig(**_given(args, PoolBuildConfig)).validate()
    if config.backend == "vllm":  # before minutes of loading, not after
        check_vllm()
    dataset = load_prompt_dataset(args.dataset, split=args.split, config_name=args.dataset_config)
    if args.limit is not None:
        dataset = dataset.select(range(min(args.limit, len(dataset))))
    model, tokenizer = load_causal_lm(args.model, device=device, dtype=args.dtype)
    source = Path(args.dataset)
    dataset_id = source.name if source.exists() else args.dataset  # no local paths in a published card
    out = build_pool(
        model, tokenizer, dataset, args.out, config,
        model_id=args.model_id or hub_model_id(args.model) or Path(args.model).name,  # never a local path
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
    p.add_argument("--pool", default=None, metavar="[NAME=]DIR",
                   help="the pool dataset's default config: a pool build folder, its config named NAME or after its "
                   "model (default: the bundled pool, config toy-reasoner)")
    p.add_argument("--add-pool", action="append", default=[], metavar="[NAME=]DIR",
                   help="one more config of the pool dataset (one per model's pool; repeatable): a pool build folder, "
                   "named NAME or after its model; configs staged into the folder before are kept")
    p.add_argument("--toy", default=None, help="toy reasoner folder (default: the bundled one)")
    p.add_argument("--space", default=None, help="Entropy Explorer Space folder (default: spaces/entropy-explorer)")


def _pool_sources(args: argparse.Namespace) -> tuple[object, list[object]]:
    """--pool and --add-pool as `heal_hf.hub.stage.PoolSource`s (parsed here: argparse would hide our errors)."""
    from .hub.stage import parse_pool_source

    return (None if args.pool is None else parse_pool_source(args.pool)), [parse_pool_source(s) for s in args.add_pool]


def _stage_hub_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="staging folder; repos go to OUT/{datasets,spaces,models}/NAMESPACE/NAME")
    _repo_source_args(p)


def _stage_hub(args: argparse.Namespace) -> int:
    from .hub.stage import stage_hub

    pool, add_pools = _pool_sources(args)
    staged, skipped = stage_hub(args.out, args.namespace, pool, args.toy, args.space, add_pools)
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
    from .hub.stage import publish

    pool, add_pools = _pool_sources(args)
    publish(args.namespace, private=args.private, dry_run=args.dry_run, pool_dir=pool, toy_dir=args.toy,
            explorer_dir=args.space, staged_dir=args.staged, add_pools=add_pools)
    return 0


def _space_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="default model: a local folder or Hub id of a causal LM (default: the bundled toy reasoner)")
    p.add_argument("--host", default=None, help="interface to serve on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or the first free from 7860)")


def _space(args: argparse.Namespace) -> int:
    from .app.space import launch

    launch(args.model, server_name=args.host, server_port=args.port)  # a model that cannot load: ValueError
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    from .app.train_options import (
        TRAINING_CHOICES,
        TRAINING_OPTIONS,
        TrainSettings,
        training_defaults,
    )

    p.add_argument("--config", help="YAML file of options: any option below (underscores), or any HEALConfig / "
                   "GRPOConfig field; the command line wins (default: none)")
    _add_fields(p, TrainSettings)
    defaults = training_defaults()
    for name, help_text in TRAINING_OPTIONS.items():
        value = defaults[name]
        hint = float if value is None else type(value)  # HEALConfig's own types would import TRL for --help
        _add_option(p, name, hint, value, help_text, TRAINING_CHOICES.get(name))


def _train(args: argparse.Namespace) -> int:
    from .app.train import train
    from .app.train_options import TRAIN_LOG, TrainSettings, read_config, split_options

    options = read_config(args.config)
    options.update({k: v for k, v in vars(args).items() if v is not None and k not in ("config", "command", "_run")})
    settings, overrides = split_options(options)
    for required in ("target", "output_dir"):
        if required not in settings:
            raise ValueError(f"{required}: missing; pass --{required.replace('_', '-')} or set it in --config")
    result = train(TrainSettings(**settings), overrides, quiet=True)
    if not result.main_process:
        return 0
    print(f"saved to {result.output_dir} (model card README.md, metrics.json, entropy_curves.png, the run's log "
          f"{TRAIN_LOG})")
    for split, values in result.metrics.get("eval", {}).items():
        print(f"eval ({split}): " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()
                                              if isinstance(v, (int, float))))  # not the per-problem details
    if result.pushed_url:
        print(f"pushed: {result.pushed_url}")
    return 0


def _card_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a heal-hf train output folder, or a checkpoint-N folder inside one")
    p.add_argument("--repo-id", default=None, help="Hub repo id the snippet loads from (default: the folder itself)")


def _card(args: argparse.Namespace) -> int:
    from .app.push import write_card

    print(f"wrote {write_card(args.checkpoint, repo_id=args.repo_id)}")
    return 0


def _diagnose_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a heal-hf train folder, a TRL/Trainer output folder or checkpoint-N, or its "
                   "trainer_state.json / metrics.json / entropy_monitor.json")
    p.add_argument("--threshold", type=float, default=0.6, help="entropy retention counted as collapsed (default 0.6)")
    p.add_argument("--figure", default="", help="where to write the PNG (default: entropy_dynamics.png beside the run)")
    p.add_argument("--no-figure", action="store_true", help="print the verdict only")


def _diagnose(args: argparse.Namespace) -> int:
    from .app.diagnose import diagnose

    print(diagnose(args.path, threshold=args.threshold, figure=None if args.no_figure else args.figure).text())
    return 0


COMMANDS: list[Command] = [
    ("demo", "few-shot HEAL on the bundled toy reasoner: 32 examples, hybrid data, GRPO + EDA, before/after table",
     _demo_args, _demo),
    ("replicate", "the paper's claim at toy scale: GRPO-32 vs GRPO-1K vs HEAL-32 and ablations, over seeds",
     _replicate_args, _replicate),
    ("build-pool", "build (or resume) a general-entropy pool: sampled responses, entropies, profiles, card",
     _build_pool_args, _build_pool),
    ("stage-hub", "write the Hub repo folders (pool dataset, evaluate Spaces, toy reasoner, explorer Space)",
     _stage_hub_args, _stage_hub),
    ("publish", "create the Hub repos and upload the staged folders (token from HF_TOKEN or `hf auth login`)",
     _publish_args, _publish),
    ("space", "serve the Entropy Explorer (the Gradio Space) locally", _space_args, _space),
    ("train", "few-shot HEAL: select general problems from a pool, train with GRPO + EDA, evaluate, save a card",
     _train_args, _train),
    ("card", "(re)generate the model card and entropy-curve figure of a heal-hf train run or checkpoint, and name a "
     "LoRA adapter's base model by its Hub id in adapter_config.json",
     _card_args, _card),
    ("diagnose", "is a GRPO run's entropy collapsing? a verdict, a forecast and a PNG, from its logs",
     _diagnose_args, _diagnose),
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
    import warnings

    from .data.files import error_line, is_network_error

    # TRL asks transformers about gradient checkpointing through a name transformers deprecates: not the user's concern.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # The Hub client retries an unreachable server for ~25 s, a warning each time: the one error line says it all.
    for name in ("huggingface_hub.utils._http", "huggingface_hub.hf_api"):
        logging.getLogger(name).addFilter(lambda record: not record.getMessage().startswith("Retrying in"))
    args = build_parser().parse_args(argv)
    try:
        return args._run(args)
    except (ValueError, OSError) as err:  # bad input (ours name the fix), or a file the system refused: no traceback
        if is_network_error(err) and "Hub at" not in str(err):
            err = error_line(err)  # the server's error, with the endpoint and the fix
        print(f"heal-hf {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a Hub client's own error types (httpx, huggingface_hub) when the Hub is unreachable
        if not is_network_error(err):
            raise
        print(f"heal-hf {args.command}: error: {error_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
