"""Deterministic random initialisation for fixtures: every parameter (including the ones the
official code zero-initialises, e.g. adaLN and final projections) gets a non-trivial value, so
every path is exercised and outputs are O(1)."""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def randomize_(module: nn.Module, seed: int, weight_gain: float = 1.0, bias_std: float = 0.1) -> nn.Module:
    g = torch.Generator().manual_seed(seed)

    def normal_(t: torch.Tensor, std: float, mean: float = 0.0):
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * std + mean)

    for name, mod in module.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            fan_in = mod.weight[0].numel()
            normal_(mod.weight, weight_gain / math.sqrt(fan_in))
            if mod.bias is not None:
                normal_(mod.bias, bias_std)
        elif isinstance(mod, (nn.LayerNorm, nn.GroupNorm)):
            if mod.weight is not None:
                normal_(mod.weight, 0.1, 1.0)
            if mod.bias is not None:
                normal_(mod.bias, 0.1)
        elif isinstance(mod, nn.Embedding):
            normal_(mod.weight, 0.5)
        for pname, p in mod.named_parameters(recurse=False):
            # bare parameters (positional tables) not covered above
            if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.LayerNorm, nn.GroupNorm, nn.Embedding)):
                continue
            normal_(p, 0.5)
    return module
