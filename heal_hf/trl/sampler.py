"""DomainMixSampler: TRL's RepeatSampler order, with every generation batch mixing target and general rows."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from ..data.pool import DOMAIN_GENERAL, DOMAIN_TARGET


def batch_target_count(n_prompts: int, n_target: int, n_general: int, target_fraction: float | None) -> int:
    """Target prompts per generation batch of `n_prompts` unique prompts.

    With `target_fraction` None, the dataset's share (a domain with no rows gets none);
    otherwise that share, at least one prompt of each domain.
    """
    if target_fraction is None:
        if n_general == 0 or n_target == 0:
            return n_prompts if n_general == 0 else 0
        target_fraction = n_target / (n_target + n_general)
    return min(max(round(target_fraction * n_prompts), 1), n_prompts - 1)


class DomainMixSampler(Sampler[int]):
    """TRL's RepeatSampler ordering, with every chunk mixing target and general rows.

    Each chunk of `batch_size` unique prompts (one generation batch) holds
    `batch_target_count(...)` target rows spread evenly among general rows, each
    drawn from its domain's own shuffled stream (reshuffled when used up); each
    index is repeated `mini_repeat_count` times and each chunk `repeat_count` times,
    exactly as RepeatSampler does. An epoch has len(domains) // batch_size chunks.
    """

    def __init__(
        self,
        domains: Sequence[str],
        mini_repeat_count: int,
        batch_size: int,
        repeat_count: int = 1,
        target_fraction: float | None = None,
        seed: int = 0,
    ) -> None:
        self.target_rows = [i for i, d in enumerate(domains) if d == DOMAIN_TARGET]
        self.general_rows = [i for i, d in enumerate(domains) if d == DOMAIN_GENERAL]
        self.num_samples = len(domains)
        self.mini_repeat_count, self.batch_size, self.repeat_count = mini_repeat_count, batch_size, repeat_count
        self.n_target = batch_target_count(batch_size, len(self.target_rows), len(self.general_rows), target_fraction)
        if self.target_rows and self.general_rows and not 0 < self.n_target < batch_size:
            raise ValueError(
                f"train_dataset: a generation batch of {batch_size} prompt(s) cannot hold both a target and a general "
                "prompt; use a generation batch of at least 2 prompts (generation_batch_size >= 2 x num_generations)"
            )
        for name, need, have in (
            ("target", self.n_target, len(self.target_rows)),
            ("general", batch_size - self.n_target, len(self.general_rows)),
        ):
            if need > have:
                raise ValueError(
                    f"train_dataset: a generation batch takes {need} {name}-domain prompts but the dataset has "
                    f"{have}; add {name} rows, lower target_fraction, or use a smaller generation batch "
                    "(per_device_train_batch_size x steps_per_generation / num_generations)"
                )
        self.generator = torch.Generator().manual_seed(seed)
        self._streams: dict[str, list[int]] = {DOMAIN_TARGET: [], DOMAIN_GENERAL: []}

    def _draw(self, domain: str, k: int) -> list[int]:
        rows = self.target_rows if domain == DOMAIN_TARGET else self.general_rows
        picked: list[int] = []
        while len(picked) < k:
            if not self._streams[domain]:
                self._streams[domain] = [rows[i] for i in torch.randperm(len(rows), generator=self.generator).tolist()]
            take = [i for i in self._streams[domain] if i not in picked][: k - len(picked)]
            self._streams[domain] = [i for i in self._streams[domain] if i not in take]
            picked += take
        return picked

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.num_samples // self.batch_size):
            targets = self._draw(DOMAIN_TARGET, self.n_target)
            generals = self._draw(DOMAIN_GENERAL, self.batch_size - self.n_target)
            slots = {(j * self.batch_size) // max(self.n_target, 1) for j in range(self.n_target)}
            chunk = [targets.pop(0) if k in slots else generals.pop(0) for k in range(self.batch_size)]
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.mini_repeat_count

    def __len__(self) -> int:
        return (self.num_samples // self.batch_size) * self.batch_size * self.mini_repeat_count * self.repeat_count
