"""The EDA reward across processes: every rank builds the same reference from the gathered batch."""

import json
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from accelerate import PartialState
from conftest import free_port

from heal_hf.trl import ENTROPIES_KWARG, EDARewardFunction


def _batch(rank: int) -> tuple[list[str], list[list[float]]]:
    """Rank-specific rows: different lengths, entropies and domain mixes on each rank."""
    g = torch.Generator().manual_seed(100 + rank)
    domains = ["target", "general", "general", "target", "general"] if rank == 0 else ["general", "target", "general"]
    entropies = [(torch.rand(int(n), generator=g) * (2.0 if d == "general" else 0.5)).tolist()
                 for d, n in zip(domains, torch.randint(6, 30, (len(domains),), generator=g))]
    return domains, entropies


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    PartialState(cpu=True)  # what a CPU Trainer's Accelerator sets up: the reward gathers through accelerate
    try:
        domains, entropies = _batch(rank)
        eda = EDARewardFunction(weight=0.5)
        rewards = eda([""] * len(domains), [""] * len(domains), domain=domains, **{ENTROPIES_KWARG: entropies})
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump({"reference": eda.last_batch_reference.to_dict(), "rewards": rewards}, f)
    finally:
        dist.destroy_process_group()


def test_every_rank_scores_against_the_same_gathered_reference(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["reference"] == ranks[1]["reference"]
    assert ranks[0]["reference"]["count"] == 5  # 3 general rows on rank 0 + 2 on rank 1
    # One process over the whole batch in rank order gives the same reference and rewards.
    domains, entropies = (sum(parts, []) for parts in zip(_batch(0), _batch(1)))
    single = EDARewardFunction(weight=0.5)
    rewards = single([""] * len(domains), [""] * len(domains), domain=domains, **{ENTROPIES_KWARG: entropies})
    assert single.last_batch_reference.to_dict() == ranks[0]["reference"]
    assert ranks[0]["rewards"] + ranks[1]["rewards"] == rewards
    assert [r is None for r in rewards] == [d == "general" for d in domains]
