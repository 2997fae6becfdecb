"""Does a trained DiT read its image? The action x0 prediction at one noise level on held-out
windows, with each window's own image latent and with the image latents shuffled within the batch
(and, for comparison, the instruction embeddings shuffled), plus a ridge regression from the
image latent alone (the linear read-out the DiT should at least match).

    python training/probe_image.py --run runs/dit [--run runs/dit-action-only] [--ridge]
    python training/probe_image.py --run runs/dit --heading data/sim-val [--vae runs/vae]

--heading: the grounding gate (README "Embedded model"): on the first frame of every episode of a
recorded dataset, does the posterior-mean first chunk (pure noise, the first denoising step) head
where the expert's first 3 actions do? Same measure as `baseline_cnn.py heading`.

Prints, per noise index (999 = pure noise, the first DDIM step), the arm MSE and gripper accuracy
(normalised actions) — own image / shuffled images / shuffled text — and the mean |Δ| of the
actions when the images are shuffled. EMA weights unless --raw.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tinysim  # noqa: E402
from train_dit import LatentCache, TinyVideoVLA  # noqa: E402
from videovla_ref.sampling import Denoiser, denoiser_sigmas, image_concat  # noqa: E402


def arm_mse(a: torch.Tensor, t: torch.Tensor) -> float:
    return float(((a[..., :6] - t[..., :6]) ** 2).mean())


def grip_acc(a: torch.Tensor, t: torch.Tensor) -> float:
    return float(((a[..., 6] > 0.5) == (t[..., 6] > 0.5)).float().mean())


@torch.no_grad()
def probe_run(run: str, val_dir: str, n: int, levels: list[int], raw: bool) -> None:
    with open(os.path.join(run, "config.json")) as f:
        cfg = json.load(f)
    scale = cfg["scaling_factor"]
    tok = Tokenizer.from_file(os.path.join(run, "tokenizer.json"))
    sp = os.path.join(run, "latent_shift.safetensors")
    shift = load_file(sp)["latent_shift"] if cfg.get("latent_shift") and os.path.exists(sp) else None
    val = LatentCache(val_dir, tok, tinysim.TEXT_LEN, stats=cfg["action_stats"], shift=shift)
    ck = torch.load(os.path.join(run, "ckpt.pt"), map_location="cpu", weights_only=False)
    model = TinyVideoVLA(ck["vocab"], cfg["dit"]["out_channels"])
    model.load_state_dict(ck["model" if raw else "ema"])
    model.eval()
    n = min(n, len(val))
    b = val.batch(torch.arange(n))
    g = torch.Generator().manual_seed(0)
    img = (b["image_mean"] * scale).permute(0, 2, 1, 3, 4)
    x0 = (b["video_mean"] * scale).permute(0, 2, 1, 3, 4)
    text = model.text(b["ids"])
    sig = denoiser_sigmas()
    T = b["actions"]
    print(f"{run} (step {ck['step']}, {'raw' if raw else 'EMA'} weights, {n} held-out windows, "
          f"latent shift {'yes' if shift is not None else 'no'})")
    for idx in levels:
        s = sig[idx].repeat(n)
        xt = s.view(n, 1, 1, 1, 1) * x0 + (1 - s**2).sqrt().view(n, 1, 1, 1, 1) * torch.randn(x0.shape, generator=g)
        at = s.view(n, 1, 1) * T + (1 - s**2).sqrt().view(n, 1, 1) * torch.randn(T.shape, generator=g)

        def act(im, tx):
            return Denoiser(model.dit)(xt, image_concat(im, x0.shape[1]), at, s, torch.full((n,), idx), tx,
                                       torch.zeros(n, dtype=torch.long))[1]

        own = act(img, text)
        shuf_img = act(img[torch.randperm(n, generator=g)], text)
        shuf_txt = act(img, text[torch.randperm(n, generator=g)])
        print(f"  t={idx:3d} s={float(s[0]):.3f}  arm MSE {arm_mse(own, T):.4f} / {arm_mse(shuf_img, T):.4f} / "
              f"{arm_mse(shuf_txt, T):.4f}  gripper {grip_acc(own, T):.3f} / {grip_acc(shuf_img, T):.3f} / "
              f"{grip_acc(shuf_txt, T):.3f}  |Δ| from shuffled images {float((own - shuf_img).abs().mean()):.4f}")
    mean = T.mean(0, keepdim=True)
    print(f"  (held-out mean predictor: arm MSE {arm_mse(mean.expand_as(T), T):.4f})")


@torch.no_grad()
def heading(run: str, data_dir: str, vae_dir: str, shuffle_text: bool) -> None:
    from cache_latents import load_vae
    from data import SimDataset, normalize_actions, to_pixels

    with open(os.path.join(run, "config.json")) as f:
        cfg = json.load(f)
    scale = cfg["scaling_factor"]
    tok = Tokenizer.from_file(os.path.join(run, "tokenizer.json"))
    sp = os.path.join(run, "latent_shift.safetensors")
    shift = load_file(sp)["latent_shift"] if cfg.get("latent_shift") and os.path.exists(sp) else None
    ck = torch.load(os.path.join(run, "ckpt.pt"), map_location="cpu", weights_only=False)
    model = TinyVideoVLA(ck["vocab"], cfg["dit"]["out_channels"])
    model.load_state_dict(ck["ema"])
    model.eval()
    vae, _ = load_vae(vae_dir)
    ds = SimDataset(data_dir)
    n = len(ds)
    frames = np.stack([ds.episode_frames(e)[0] for e in range(n)])  # (n, H, W, 3)
    m, _ = vae.encode(to_pixels(frames[:, None]))  # (n, C, 1, h, w)
    if shift is not None:
        m = m - shift[None, :, None]
    img = (m * scale).permute(0, 2, 1, 3, 4)  # (n, 1, C, h, w)
    from videovla_ref.modeldir import tokenize
    texts = [ds.episodes[(e + 1) % n if shuffle_text else e]["instruction"] for e in range(n)]
    ids = torch.tensor([tokenize(tok, t, tinysim.TEXT_LEN) for t in texts])
    T_lat = cfg["dit"]["latent_frames"]
    g = torch.Generator().manual_seed(0)
    xt = torch.randn((n, T_lat) + tuple(img.shape[2:]), generator=g)
    at = torch.randn((n, 6, 7), generator=g)
    s = denoiser_sigmas()[999].repeat(n)
    act = Denoiser(model.dit)(xt, image_concat(img, T_lat), at, s, torch.full((n,), 999), model.text(ids),
                              torch.zeros(n, dtype=torch.long))[1].numpy()
    cos, moves = [], []
    for e in range(n):
        y = normalize_actions(ds.episode_actions(e)[:3], cfg["action_stats"])
        pv, yv = act[e, :3, 3:5].sum(0), y[:, 3:5].sum(0)
        cos.append(float(pv @ yv / (np.linalg.norm(pv) * np.linalg.norm(yv) + 1e-9)))
        moves.append(float(np.linalg.norm(yv)) > 0.3)
    cos, moves = np.array(cos)[moves], np.array(moves)
    print(f"{run}{' (instructions shuffled)' if shuffle_text else ''}: posterior-mean first chunk at the first step vs "
          f"the expert's, {len(cos)} episodes of {data_dir} where the expert moves sideways: within 45 deg "
          f"{np.mean(cos > 0.7):.2f}, opposite (cos < 0) {np.mean(cos < 0):.2f}, median cos {np.median(cos):.2f}")


def ridge(train_dir: str, val_dir: str, shards: int, lam: float = 100.0) -> None:
    """Linear read-out: image latent (flattened, standardised) -> the 6x7 normalised actions."""
    with open(os.path.join(train_dir, "meta.json")) as f:
        meta = json.load(f)
    stats = meta["action_stats"]
    from data import normalize_actions

    def load(root, names):
        parts: dict[str, list] = {}
        for s in names:
            for k, v in load_file(os.path.join(root, s)).items():
                if k in ("image_mean", "actions"):
                    parts.setdefault(k, []).append(v)
        x = torch.cat(parts["image_mean"]).float().reshape(-1, np.prod(parts["image_mean"][0].shape[1:])).numpy()
        y = normalize_actions(torch.cat(parts["actions"]).numpy(), stats).reshape(len(x), -1)
        return x, y

    x, y = load(train_dir, meta["shards"][:shards])
    with open(os.path.join(val_dir, "meta.json")) as f:
        xv, yv = load(val_dir, json.load(f)["shards"])
    mu, sd = x.mean(0), x.std(0) + 1e-3
    z = (x - mu) / sd
    w = np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T @ (y - y.mean(0)))
    p = torch.from_numpy(((xv - mu) / sd) @ w + y.mean(0)).reshape(-1, 6, 7)
    t = torch.from_numpy(yv).reshape(-1, 6, 7)
    print(f"ridge on the image latent ({len(x)} training windows, {len(xv)} held-out): arm MSE {arm_mse(p, t):.4f}, "
          f"gripper {grip_acc(p, t):.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, help="a train_dit.py run directory (repeatable)")
    ap.add_argument("--val-latents", default="data/latents-val")
    ap.add_argument("--latents", default="data/latents", help="training cache, for --ridge")
    ap.add_argument("--windows", type=int, default=128)
    ap.add_argument("--levels", default="999,900,700,500,200")
    ap.add_argument("--raw", action="store_true", help="the raw weights instead of the EMA")
    ap.add_argument("--ridge", action="store_true", help="also fit the ridge read-out (6 training shards)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--heading", default="", help="a recorded dataset: the first-plan heading gate instead")
    ap.add_argument("--vae", default="runs/vae", help="the VAE run the DiT's latents came from (for --heading)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.heading:
        for r in a.run:
            heading(r, a.heading, a.vae, False)
            heading(r, a.heading, a.vae, True)
        return
    for r in a.run:
        probe_run(r, a.val_latents, a.windows, [int(v) for v in a.levels.split(",")], a.raw)
    if a.ridge:
        ridge(a.latents, a.val_latents, 6)


if __name__ == "__main__":
    main()
