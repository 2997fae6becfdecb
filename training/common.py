"""Training-only helpers shared by the stage scripts: progress lines, checkpoints, LR schedule."""

from __future__ import annotations

import json
import math
import os
import sys
import time

import torch


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)
    torch.set_flush_denormal(True)


def cosine_lr(step: int, total: int, base: float, warmup: int, final_frac: float = 0.05) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def save_ckpt(path: str, state: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_ckpt(path: str):
    if os.path.exists(path):
        return torch.load(path, map_location="cpu", weights_only=False)
    return None


class Progress:
    """One line per log interval to stdout and a JSON-lines log (`log.jsonl` in the run dir)."""

    def __init__(self, run_dir: str, total: int, start_step: int = 0, name: str = ""):
        self.total, self.name = total, name
        self.t0 = time.time()
        self.s0 = start_step
        self.f = open(os.path.join(run_dir, "log.jsonl"), "a")

    def log(self, step: int, **vals) -> None:
        el = time.time() - self.t0
        rate = (step + 1 - self.s0) / max(el, 1e-9)
        eta = (self.total - step - 1) / max(rate, 1e-9)
        msg = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in vals.items())
        print(f"[{self.name}] step {step + 1}/{self.total} {msg} | {rate:.2f} it/s, "
              f"elapsed {el / 60:.1f} min, eta {eta / 60:.1f} min", flush=True)
        self.f.write(json.dumps({"step": step + 1, "time": round(el, 1), **vals}) + "\n")
        self.f.flush()


def eprint(*a):
    print(*a, file=sys.stderr, flush=True)
