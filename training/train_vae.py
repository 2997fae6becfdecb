"""Stage 1: train the tiny CogVideoX causal VAE (`videovla_ref.vae.CogVideoXVAE`, config
`tinysim.PRESET["vae"]`) on simulator video.

Clips of --frames frames (1 + 8k, e.g. 9 or 17, so the chunked decode returns as many frames; the conv is causal, so short clips train the same weights the
49-frame decode uses); the encoder sees the whole clip (SAT encode), the decoder runs the official
chunked decode ([0:3], [3:5], ... with the conv cache) so training matches inference. Loss = MSE +
L1 on pixels in [-1,1] + kl_weight * KL (sum over latent / number of pixels). Held-out PSNR on a
fixed set of 17-frame clips from --val is logged at every eval and written to metrics.json.

    python training/train_vae.py --data data/sim-train --val data/sim-val --out runs/vae --minutes 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tinysim  # noqa: E402
from common import Progress, cosine_lr, load_ckpt, save_ckpt, set_threads  # noqa: E402
from data import SimDataset, to_pixels  # noqa: E402
from videovla_ref.vae import CogVideoXVAE  # noqa: E402


def vae_loss(vae: CogVideoXVAE, x: torch.Tensor, kl_weight: float, gen: torch.Generator | None = None,
             focus: torch.Tensor | None = None, focus_weight: float = 0.0):
    """MSE + L1 + kl_weight * KL. With `focus` (the mean frame of the data, (3, H, W)) each pixel's
    error is weighted by 1 + focus_weight * |x - focus| (mean over colour): the objects and the
    gripper — the few pixels that differ from the static table — count more than the table."""
    mean, logvar = vae.encode(x)
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen)
    rec = vae.decode(z)
    w = focus_weights(x, focus, focus_weight) if focus is not None and focus_weight > 0 else 1.0
    mse = ((rec - x).pow(2) * w).mean()
    l1 = ((rec - x).abs() * w).mean()
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum() / x.numel()
    return mse + l1 + kl_weight * kl, {"mse": float(mse.detach()), "l1": float(l1.detach()), "kl": float(kl.detach())}


def focus_weights(x: torch.Tensor, focus: torch.Tensor, focus_weight: float) -> torch.Tensor:
    """(B, 1, F, H, W) per-pixel loss weights 1 + focus_weight * |x - focus| (mean over colour), scaled
    to mean 1, for videos x (B, 3, F, H, W) and the mean frame focus (3, H, W)."""
    w = 1 + focus_weight * (x - focus[None, :, None]).abs().mean(1, keepdim=True)
    return w / w.mean()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of videos in [-1,1] mapped to [0,1] (clamped), over the whole batch."""
    a = ((a.clamp(-1, 1) + 1) / 2)
    b = ((b.clamp(-1, 1) + 1) / 2)
    mse = float((a - b).pow(2).mean())
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def val_clips(ds: SimDataset, n: int, frames: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        e = int(rng.integers(len(ds)))
        fc = ds.episodes[e]["frame_count"]
        start = int(rng.integers(max(1, fc - frames)))
        out.append(ds.clip(e, start, frames))
    return to_pixels(np.stack(out))


@torch.no_grad()
def evaluate(vae: CogVideoXVAE, clips: torch.Tensor, bs: int = 4) -> float:
    vae.eval()
    recs = []
    for i in range(0, len(clips), bs):
        mean, _ = vae.encode(clips[i:i + bs])
        recs.append(vae.decode(mean))
    vae.train()
    return psnr(torch.cat(recs), clips)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/sim-train")
    ap.add_argument("--val", default="data/sim-val")
    ap.add_argument("--out", default="runs/vae")
    ap.add_argument("--steps", type=int, default=3000, help="LR schedule length (cosine)")
    ap.add_argument("--minutes", type=float, default=0, help="stop (and save) after this wall time; 0 = no limit")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--kl-weight", type=float, default=1e-5)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--val-clips", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", default="",
                    help="block_out_channels, comma-separated (default: tinysim.PRESET, 4,8,16,16)")
    ap.add_argument("--focus", type=float, default=0.0,
                    help="weight the reconstruction error of pixels that differ from the data's mean frame (objects, "
                         "gripper) by 1 + FOCUS * |x - mean| (0 = plain MSE + L1)")
    ap.add_argument("--init", default="", help="start from these VAE weights (a vae.pt), e.g. to continue a finished run")
    a = ap.parse_args()
    set_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    preset = dict(tinysim.PRESET["vae"])
    if a.channels:
        preset["block_out_channels"] = tuple(int(c) for c in a.channels.split(","))
    cfg = tinysim.vae_config(**preset)
    vae = CogVideoXVAE.from_config(cfg)
    opt = torch.optim.AdamW(vae.parameters(), lr=a.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ckpt_path = os.path.join(a.out, "ckpt.pt")
    step = 0
    ck = load_ckpt(ckpt_path)
    if ck is None and a.init:
        vae.load_state_dict(torch.load(a.init, map_location="cpu"))
        print(f"initialised from {a.init}", flush=True)
    if ck is not None:
        vae.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump({"vae": cfg, "args": vars(a)}, f, indent=1)

    ds = SimDataset(a.data)
    val = val_clips(SimDataset(a.val), a.val_clips, 17)
    rng = np.random.default_rng(a.seed + step)
    focus = None
    if a.focus > 0:  # the mean frame over 256 random frames (the camera and the table never move)
        picks = [f[rng.integers(len(f))] for f in (ds.episode_frames(int(e)) for e in rng.integers(len(ds), size=256))]
        focus = to_pixels(np.stack(picks)[:, None]).mean(0)[:, 0]  # (3, H, W)
    prog = Progress(a.out, a.steps, step, "vae")
    t_start = time.time()
    best = None
    vae.train()
    while step < a.steps:
        clips = []
        for _ in range(a.batch):
            e = int(rng.integers(len(ds)))
            fc = ds.episodes[e]["frame_count"]
            clips.append(ds.clip(e, int(rng.integers(max(1, fc - a.frames + 1))), a.frames))
        x = to_pixels(np.stack(clips))
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, a.steps, a.lr, warmup=100)
        loss, parts = vae_loss(vae, x, a.kl_weight, focus=focus, focus_weight=a.focus)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        out_of_time = a.minutes and (time.time() - t_start) > a.minutes * 60
        if step % 20 == 0 or step == a.steps:
            prog.log(step - 1, loss=float(loss), **parts, lr=opt.param_groups[0]["lr"])
        if step % a.eval_every == 0 or step == a.steps or out_of_time:
            p = evaluate(vae, val)
            prog.log(step - 1, val_psnr=p)
            best = p
            save_ckpt(ckpt_path, {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step, "config": cfg})
            torch.save(vae.state_dict(), os.path.join(a.out, "vae.pt"))
            with open(os.path.join(a.out, "metrics.json"), "w") as f:
                json.dump({"step": step, "val_psnr_17f": p, "val_clips": a.val_clips,
                           "minutes": (time.time() - t_start) / 60}, f, indent=1)
        if out_of_time:
            print(f"time budget reached at step {step}", flush=True)
            break
    print(f"done: step {step}, held-out PSNR {best:.2f} dB", flush=True)


if __name__ == "__main__":
    main()
