"""Stage 1.5: encode training windows once with the trained VAE, so stage 2 never runs the VAE.

For each window (episode, k) — 49 frames k*8 ..= (k+6)*8 and actions k..k+5 (data.py) — stores:
* `video_mean`, `video_logvar` (N, C, 13, h, w) float16: the VAE posterior of the whole 49-frame
  window (SAT encode, whole clip at once);
* `image_mean`, `image_logvar` (N, C, 1, h, w) float16: the posterior of the first frame after the
  released first-frame pixel noise, x + sigma * N(0, 1) with sigma = exp(N(-3, 0.5)) (one draw per
  window, recorded in `image_sigma`);
* `actions` (N, 6, 7) float32 raw actions, `episode`, `k` int64; instructions in meta.json.
Stage 2 samples the posteriors (mean + std * eps) at every use, as the released loss does.

Windows: --per-episode random windows per episode (all windows if 0), shards of --shard-size,
resumable (finished shards are kept), progress lines.

--episodes-per-shard N (all windows of every episode, cheaply): each episode's frames (padded with
48 copies of the last one) are encoded ONCE and window k takes latents 2k+1 .. 2k+12 of that
encoding (latent j >= 1 of a window covers frames 8k+4j-3 .. 8k+4j, exactly episode latent 2k+j);
latent 0 is frame 8k encoded alone, as in a window encode. Only the causal convolutions' view of
frames before 8k differs from encoding each window separately; each frame is encoded ~1.3 times
instead of ~6, so every window of every episode fits the budget. meta.json also records the latent std and
the scaling factor 1/std used by stage 2 and written into the exported VAE config.

    python training/cache_latents.py --data data/sim-train --vae runs/vae --out data/latents
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import set_threads  # noqa: E402
from data import SimDataset, action_statistics, to_pixels  # noqa: E402
from videovla_ref.vae import CogVideoXVAE  # noqa: E402


def load_vae(run_dir: str) -> tuple[CogVideoXVAE, dict]:
    with open(os.path.join(run_dir, "config.json")) as f:
        cfg = json.load(f)["vae"]
    vae = CogVideoXVAE.from_config(cfg)
    vae.load_state_dict(torch.load(os.path.join(run_dir, "vae.pt"), map_location="cpu"))
    vae.eval()
    return vae, cfg


def first_frame_noise(x0: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Released conditioning noise: sigma = exp(N(-3, 0.5)) per sample, x + sigma * N(0, 1)."""
    B = x0.shape[0]
    sigma = torch.exp(torch.randn(B, generator=gen) * 0.5 - 3.0)
    noisy = x0 + sigma.view(B, 1, 1, 1, 1) * torch.randn(x0.shape, generator=gen)
    return noisy, sigma


@torch.no_grad()
def encode_windows(vae: CogVideoXVAE, frames_u8: np.ndarray, gen: torch.Generator) -> dict:
    x = to_pixels(frames_u8)  # (B,3,49,H,W)
    vm, vl = vae.encode(x)
    img, sigma = first_frame_noise(x[:, :, :1], gen)
    im, il = vae.encode(img)
    return {"video_mean": vm.half(), "video_logvar": vl.half(), "image_mean": im.half(),
            "image_logvar": il.half(), "image_sigma": sigma}


@torch.no_grad()
def encode_episode(vae: CogVideoXVAE, ds: SimDataset, e: int, gen: torch.Generator) -> dict:
    """All windows of episode e from one encode of the whole episode (see the module doc)."""
    ep = ds.episodes[e]
    fr = ds.episode_frames(e)
    n = int(ep["action_count"])
    w = ds.window_count(e)  # n, or fewer in an episode cut short
    T = (ds.num_frames - 1) // 4 + 1  # 13 latent frames per window
    # padded by repeating the last frame up to the last window's end (none in an episode cut short)
    pad = max((w - 1) * ds.substeps + ds.num_frames - len(fr), 0)
    full = np.concatenate([fr, np.repeat(fr[-1:], pad, axis=0)])
    m, lv = vae.encode(to_pixels(full[None]))
    firsts = to_pixels(fr[np.minimum(np.arange(w) * ds.substeps, len(fr) - 1)][:, None])  # (w,3,1,H,W)
    fm, fl = vae.encode(firsts)
    img, sigma = first_frame_noise(firsts, gen)
    im, il = vae.encode(img)
    idx = torch.arange(w)[:, None] * 2 + torch.arange(1, T)[None, :]  # (w, 12) episode latent indices
    vm = torch.cat([fm, m[0][:, idx].permute(1, 0, 2, 3, 4)], dim=2)
    vl = torch.cat([fl, lv[0][:, idx].permute(1, 0, 2, 3, 4)], dim=2)
    ea = ds.episode_actions(e)
    acts = np.stack([ea[np.minimum(k + np.arange(ds.action_len), n - 1)] for k in range(w)])
    return {"video_mean": vm.half(), "video_logvar": vl.half(), "image_mean": im.half(), "image_logvar": il.half(),
            "image_sigma": sigma, "actions": torch.from_numpy(acts.astype(np.float32)),
            "episode": torch.full((w,), e, dtype=torch.long), "k": torch.arange(w, dtype=torch.long)}


def cache_by_episode(a, vcfg, ds: SimDataset, per_shard: int, encode_chunk, windows_of, what: str) -> None:
    """Shards of `per_shard` episodes in a random order; `encode_chunk(episodes, gen, t0)` gives a shard's
    tensors (lists to concatenate), `windows_of(episodes)` its window count. Resumable: existing shards
    are kept; --minutes stops after the shard that crosses it; meta.json lists the finished shards."""
    rng = np.random.default_rng(a.seed)
    order = rng.permutation(len(ds)).tolist()
    n_shards = (len(order) + per_shard - 1) // per_shard
    print(f"cache: {what} of {len(ds)} episodes -> {n_shards} shards in {a.out}", flush=True)
    t0 = time.time()
    shards, windows = [], 0
    for si in range(n_shards):
        if a.minutes and time.time() - t0 > a.minutes * 60:
            print(f"time budget reached: {len(shards)} of {n_shards} shards", flush=True)
            break
        name = f"latents-{si:05d}.safetensors"
        path = os.path.join(a.out, name)
        chunk = order[si * per_shard: (si + 1) * per_shard]
        if not os.path.exists(path):
            parts = encode_chunk(chunk, torch.Generator().manual_seed(a.seed * 100003 + si), t0)
            save_file({k: torch.cat(v).contiguous() for k, v in parts.items()}, path + ".tmp")
            os.replace(path + ".tmp", path)
        shards.append(name)
        windows += windows_of(chunk)
    write_meta(a, vcfg, ds, shards, windows, t0)


def cache_episodes(a, vae, vcfg, ds: SimDataset) -> None:
    done = [0]

    def encode_chunk(chunk, gen, t0):
        parts: dict[str, list] = {}
        for e in chunk:
            for key, v in encode_episode(vae, ds, e, gen).items():
                parts.setdefault(key, []).append(v)
            done[0] += 1
            el = time.time() - t0
            print(f"[cache] episode {done[0]} of this run | {el / 60:.1f} min, {done[0] / max(el, 1e-9):.2f} ep/s",
                  flush=True)
        return parts

    total = sum(ds.window_count(e) for e in range(len(ds)))
    cache_by_episode(a, vcfg, ds, a.episodes_per_shard, encode_chunk,
                     lambda chunk: sum(ds.window_count(e) for e in chunk), f"all {total} windows (episode encodes)")


@torch.no_grad()
def cache_first_frames(a, vae, vcfg, ds: SimDataset) -> None:
    """--first-frame-only: per sample only what the first denoising steps need — the noisy first
    frame's posterior (image_mean/logvar/sigma) and the window's 6 actions; no video. Many scenes for
    the cost of one frame each (train_dit.py --scene-latents). One sample per episode (window 0), or
    with --every-window one per window k: frame k*substeps and actions k..k+5 — every phase of the
    episode (approach, grasp, carry), not only its start."""

    def keys(e: int) -> list[int]:
        return list(range(ds.window_count(e))) if a.every_window else [0]

    def encode_chunk(chunk, gen, t0):
        items = []  # (episode, k, frame u8 (1,H,W,3), actions (6,7))
        for e in chunk:
            fr, ea = ds.episode_frames(e), ds.episode_actions(e)
            for k in keys(e):
                f = min(k * ds.substeps, len(fr) - 1)
                items.append((e, k, fr[f: f + 1], ea[np.minimum(k + np.arange(ds.action_len), len(ea) - 1)]))
        parts: dict[str, list] = {}
        for b in range(0, len(items), 64):
            its = items[b: b + 64]
            x = to_pixels(np.stack([it[2] for it in its]))  # (B,3,1,H,W)
            img, sigma = first_frame_noise(x, gen)
            im, il = vae.encode(img)
            for key, v in {"image_mean": im.half(), "image_logvar": il.half(), "image_sigma": sigma,
                           "actions": torch.from_numpy(np.stack([it[3] for it in its]).astype(np.float32)),
                           "episode": torch.tensor([it[0] for it in its], dtype=torch.long),
                           "k": torch.tensor([it[1] for it in its], dtype=torch.long)}.items():
                parts.setdefault(key, []).append(v)
        print(f"[cache] {len(chunk)} episodes, {len(items)} frames | {(time.time() - t0) / 60:.1f} min", flush=True)
        return parts

    cache_by_episode(a, vcfg, ds, a.episodes_per_shard or 4096, encode_chunk,
                     lambda chunk: sum(len(keys(e)) for e in chunk),
                     "window start frames" if a.every_window else "first frames")


def write_meta(a, vcfg, ds: SimDataset, shards: list[str], windows: int, t0: float) -> None:
    # latent statistics -> scaling factor (SD-style 1/std of the posterior means)
    first = load_file(os.path.join(a.out, shards[0]))
    vm = first["video_mean" if "video_mean" in first else "image_mean"].float()
    std = float(vm.std())
    # The sim camera and table never move: most of the latent variance is one fixed spatial pattern.
    # The per-window content is the deviation from the mean latent; scale it to ~0.4 std.
    content_std = float((vm - vm.mean(0, keepdim=True)).std())
    meta = {"format": "videovla-latents-v1", "first_frame_only": "video_mean" not in first, "data": os.path.abspath(a.data), "vae": os.path.abspath(a.vae),
            "vae_config": vcfg, "shards": shards, "windows": windows,
            "instructions": [ep["instruction"] for ep in ds.episodes],
            "tasks": [ep["task"] for ep in ds.episodes],
            "action_stats": action_statistics(ds.all_actions()),
            "latent_std": std, "scaling_factor": round(1.0 / std, 4),
            "content_std": content_std, "content_scaling_factor": round(0.4 / content_std, 3),
            "minutes": (time.time() - t0) / 60}
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f)
    print(f"cache done: {meta['windows']} windows, latent std {std:.4f} (1/std {meta['scaling_factor']}), "
          f"content std {content_std:.4f} (0.4/std {meta['content_scaling_factor']})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/sim-train")
    ap.add_argument("--vae", default="runs/vae")
    ap.add_argument("--out", default="data/latents")
    ap.add_argument("--per-episode", type=int, default=4)
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--shard-size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--episodes-per-shard", type=int, default=0,
                    help="cache ALL windows from one encode per episode, this many episodes per shard")
    ap.add_argument("--first-frame-only", action="store_true",
                    help="only the noisy first frame and first 6 actions of each episode (train_dit.py --scene-latents)")
    ap.add_argument("--every-window", action="store_true",
                    help="with --first-frame-only: one sample per window (its start frame and 6 actions), not per episode")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=0,
                    help="stop after the shard that crosses this wall time (meta.json lists the finished shards)")
    a = ap.parse_args()
    set_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    vae, vcfg = load_vae(a.vae)
    if a.first_frame_only:  # any recording (e.g. the cheap `sim record --substeps 1`): frame 0 of each episode
        with open(os.path.join(a.data, "meta.json")) as f:
            sub = json.load(f)["substeps"]
        ds = SimDataset(a.data, num_frames=6 * sub + 1)
        cache_first_frames(a, vae, vcfg, ds)
        return
    ds = SimDataset(a.data)
    if a.episodes_per_shard:
        cache_episodes(a, vae, vcfg, ds)
        return
    rng = np.random.default_rng(a.seed)
    wins = []
    for e, ep in enumerate(ds.episodes):
        ks = np.arange(ds.window_count(e))
        if a.per_episode and len(ks) > a.per_episode:
            ks = np.sort(rng.choice(ks, a.per_episode, replace=False))
        wins += [(e, int(k)) for k in ks]
    order = rng.permutation(len(wins))  # shards hold a random mix of episodes
    wins = [wins[i] for i in order]
    if a.max_windows:
        wins = wins[: a.max_windows]
    n_shards = (len(wins) + a.shard_size - 1) // a.shard_size
    print(f"cache: {len(wins)} windows from {len(ds)} episodes -> {n_shards} shards in {a.out}", flush=True)
    t0 = time.time()
    done = 0
    shards = []
    for si in range(n_shards):
        if a.minutes and time.time() - t0 > a.minutes * 60:
            print(f"time budget reached: {len(shards)} of {n_shards} shards", flush=True)
            break
        name = f"latents-{si:05d}.safetensors"
        shards.append(name)
        path = os.path.join(a.out, name)
        chunk = wins[si * a.shard_size: (si + 1) * a.shard_size]
        if os.path.exists(path):
            done += len(chunk)
            continue
        gen = torch.Generator().manual_seed(a.seed * 100003 + si)
        parts: dict[str, list] = {}
        for b in range(0, len(chunk), a.batch):
            ws = chunk[b: b + a.batch]
            items = [ds.window(e, k) for e, k in ws]
            enc = encode_windows(vae, np.stack([it["frames"] for it in items]), gen)
            enc["actions"] = torch.from_numpy(np.stack([it["actions"] for it in items]))
            enc["episode"] = torch.tensor([e for e, _ in ws], dtype=torch.long)
            enc["k"] = torch.tensor([k for _, k in ws], dtype=torch.long)
            for key, v in enc.items():
                parts.setdefault(key, []).append(v)
            done += len(ws)
            el = time.time() - t0
            print(f"[cache] {done}/{len(wins)} windows | {el / 60:.1f} min, "
                  f"{done / max(el, 1e-9):.1f} win/s", flush=True)
        save_file({k: torch.cat(v).contiguous() for k, v in parts.items()}, path + ".tmp")
        os.replace(path + ".tmp", path)
    write_meta(a, vcfg, ds, shards, min(len(wins), len(shards) * a.shard_size), t0)


if __name__ == "__main__":
    main()
