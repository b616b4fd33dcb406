"""The run's randomness as pure functions of (seed, rank, step) and (seed, epoch).

Every random draw of a step (reparameterisation noise, dynamic binarization) comes from
`step_generator`, and every epoch's batch order from `epoch_permutation`, so a run stopped and
resumed at any step draws exactly what an uninterrupted run would have drawn.
"""

from __future__ import annotations

import torch


def step_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """The generator for one step's noise: a pure function of (seed, rank, step)."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + rank * 7_919 + step) % (2**63 - 1))
    return g


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the `n` training images in `epoch`, the same on every rank (on the CPU)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)  # (n,)
