"""A plain TRL GRPO script, plus HEAL's EDA reward: the one heal_hf import is marked.

The dataset needs a `domain` column ("target" for your few-shot problems, "general" for
the general-domain problems mixed in; `heal-hf train` or
`heal_hf.data.processors.HybridSelection` builds one from a general-entropy pool). The EDA
reward returns lambda * r_EDA for target rows and None for general rows, so the total is
r = r_verify + lambda * r_EDA.

    python examples/trl_grpo_with_eda.py --model HuggingFaceTB/SmolLM2-135M-Instruct
    python examples/trl_grpo_with_eda.py --model ./my-local-model --max-steps 2   # offline
    accelerate launch --config_file examples/accelerate/ddp.yaml examples/trl_grpo_with_eda.py ...  # many GPUs
"""

import argparse
import os
import re

import evaluate
import torch
from datasets import Dataset, load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from heal_hf.trl import EDA_METRIC_PATH, eda_reward_function  # <- the HEAL addition


def accuracy_reward(completions, answer, **kwargs):
    """1.0 when the completion's last number equals the reference answer."""
    rewards = []
    for completion, reference in zip(completions, answer):
        numbers = re.findall(r"-?\d+(?:\.\d+)?", completion)
        rewards.append(float(bool(numbers) and float(numbers[-1]) == float(reference)))
    return rewards


def toy_problems() -> Dataset:
    """A few arithmetic problems: 'target' (few-shot) and 'general' (mixed in)."""
    target = [(f"Q: {a} + {b} = ?\nA:", str(a + b)) for a, b in [(3, 4), (12, 9), (25, 17), (8, 8)]]
    general = [(f"Q: {a} * {b} = ?\nA:", str(a * b)) for a in range(2, 6) for b in range(3, 6)]
    rows = [(p, a, "target") for p, a in target] + [(p, a, "general") for p, a in general]
    return Dataset.from_dict({k: list(v) for k, v in zip(("prompt", "answer", "domain"), zip(*rows))})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct", help="causal LM (Hub id or folder)")
    parser.add_argument("--dataset", default=None, help="json/jsonl/csv/parquet with prompt, answer, domain (default: toy problems)")
    parser.add_argument("--metric", default="heal/eda", help="the EDA evaluate module (default: heal/eda, else the packaged copy)")
    parser.add_argument("--output-dir", default="outputs/grpo-with-eda", help="where checkpoints go")
    parser.add_argument("--max-steps", type=int, default=100, help="optimizer steps")
    parser.add_argument("--eda-weight", type=float, default=0.1, help="lambda in r = r_verify + lambda * r_EDA")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    if args.dataset:
        dataset = load_dataset(args.dataset.rsplit(".", 1)[-1].replace("jsonl", "json"), data_files=args.dataset, split="train")
    else:
        dataset = toy_problems()

    if os.environ.get("HF_HUB_OFFLINE") == "1":  # offline: the same module, as packaged with heal-hf (no 13 s wait)
        eda_metric = evaluate.load(EDA_METRIC_PATH, keep_in_memory=True)
    else:
        try:
            eda_metric = evaluate.load(args.metric, keep_in_memory=True)
        except (OSError, ConnectionError, ValueError) as err:  # the Hub is out of reach: same module, packaged
            print(f"evaluate.load({args.metric!r}) failed ({type(err).__name__}); using the copy packaged with heal-hf")
            eda_metric = evaluate.load(EDA_METRIC_PATH, keep_in_memory=True)

    config = GRPOConfig(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=16,
        num_generations=4,
        max_completion_length=32,
        learning_rate=1e-5,
        # Scale advantages by the batch's reward std, not each prompt's: where a prompt's rollouts are all right
        # (or all wrong) the group std is EDA's alone and would blow lambda * r_EDA up to unit size.
        scale_rewards="batch",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=False,
        activation_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),  # CPU-only machines stay data-parallel under accelerate launch
    )
    eda = eda_reward_function(eda_metric, weight=args.eda_weight)  # model, tokenizer and T: from the trainer
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[accuracy_reward, eda],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[eda],  # <- HEAL: EDA reads the trainer's temperature, model and tokenizer when training starts
    )
    trainer.train()
    last = [entry for entry in trainer.state.log_history if "heal/eda_reward" in entry][-1]
    if trainer.accelerator.is_main_process:
        print(f"step {last['step']}: reward {last['reward']:.4f}, EDA reward {last['heal/eda_reward']:.4f}, "
              f"entropy target {last['heal/entropy/target']:.3f} / general {last['heal/entropy/general']:.3f} nats, "
              f"retention target {last['heal/entropy_retention/target']:.3f}, "
              f"{trainer.accelerator.num_processes} process(es)")


if __name__ == "__main__":
    main()
