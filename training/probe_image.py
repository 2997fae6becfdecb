"""Does a trained DiT read its image? The action x0 prediction at one noise level on held-out
windows, with each window's own image latent and with the image latents shuffled within the batch
(and, for comparison, the instruction embeddings shuffled), plus a ridge regression from the
image latent alone (the linear read-out the DiT should at least match).

    python training/probe_image.py --run runs/dit [--run runs/dit-action-only] [--ridge]
    python training/probe_image.py --run runs/dit --heading data/sim-val [--vae runs/vae]

--heading: the grounding gate (README "Embedded model"): on the first frame of every episode of a
recorded dataset, does the posterior-mean first chunk (pure noise, the first denoising step) head
where the expert's first 3 actions do? Same measure as `baseline_cnn.py heading`.

    python training/probe_image.py --run runs/dit --heading data/sim-val --latent-cnn data/latents-scenes

--latent-cnn: is the grounding in the VAE latent at all? A conv net + instruction FiLM trained on a
first-frame cache's image latents (the run's scale, shift, tokenizer, statistics), gated the same way.

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


def first_frames(data_dir: str, vae_dir: str, shift, scale: float):
    """The held-out episodes of a recording and the DiT-space latents (n, C, 1, h, w) of their first frames."""
    from cache_latents import load_vae
    from data import SimDataset, to_pixels

    vae, _ = load_vae(vae_dir)
    ds = SimDataset(data_dir)
    frames = np.stack([ds.episode_frames(e)[0] for e in range(len(ds))])  # (n, H, W, 3)
    with torch.no_grad():
        m, _ = vae.encode(to_pixels(frames[:, None]))  # (n, C, 1, h, w)
    if shift is not None:
        m = m - shift[None, :, None]
    return ds, m * scale


def heading_report(name: str, act: np.ndarray, ds, stats: dict, data_dir: str) -> None:
    """Horizontal heading of the first 3 planned (normalised) actions against the expert's, on the
    episodes where the expert moves sideways."""
    from data import normalize_actions

    cos, moves = [], []
    for e in range(len(ds)):
        y = normalize_actions(ds.episode_actions(e)[:3], stats)
        pv, yv = act[e, :3, 3:5].sum(0), y[:, 3:5].sum(0)
        cos.append(float(pv @ yv / (np.linalg.norm(pv) * np.linalg.norm(yv) + 1e-9)))
        moves.append(float(np.linalg.norm(yv)) > 0.3)
    cos = np.array(cos)[np.array(moves)]
    print(f"{name}: first chunk vs the expert's, {len(cos)} episodes of {data_dir} where the expert moves sideways: "
          f"within 45 deg {np.mean(cos > 0.7):.2f}, opposite (cos < 0) {np.mean(cos < 0):.2f}, "
          f"median cos {np.median(cos):.2f}", flush=True)


def load_run(run: str):
    with open(os.path.join(run, "config.json")) as f:
        cfg = json.load(f)
    tok = Tokenizer.from_file(os.path.join(run, "tokenizer.json"))
    sp = os.path.join(run, "latent_shift.safetensors")
    shift = load_file(sp)["latent_shift"] if cfg.get("latent_shift") and os.path.exists(sp) else None
    return cfg, tok, shift


def shuffled_ids(tok, ds, shuffle_text: bool) -> torch.Tensor:
    from videovla_ref.modeldir import tokenize

    n = len(ds)
    texts = [ds.episodes[(e + 1) % n if shuffle_text else e]["instruction"] for e in range(n)]
    return torch.tensor([tokenize(tok, t, tinysim.TEXT_LEN) for t in texts])


@torch.no_grad()
def heading(run: str, data_dir: str, vae_dir: str, shuffle_text: bool, frames: int = 0) -> None:
    """The DiT's posterior-mean first chunk at the first denoising step (idx 999, pure noise).
    `frames` > 0: feed only that many latent frames (as `train_dit.py --scene-frames`); 0 = all."""
    cfg, tok, shift = load_run(run)
    ck = torch.load(os.path.join(run, "ckpt.pt"), map_location="cpu", weights_only=False)
    model = TinyVideoVLA(ck["vocab"], cfg["dit"]["out_channels"])
    model.load_state_dict(ck["ema"])
    model.eval()
    ds, m = first_frames(data_dir, vae_dir, shift, cfg["scaling_factor"])
    n = len(ds)
    img = m.permute(0, 2, 1, 3, 4)  # (n, 1, C, h, w)
    ids = shuffled_ids(tok, ds, shuffle_text)
    T_lat = frames or cfg["dit"]["latent_frames"]
    g = torch.Generator().manual_seed(0)
    xt = torch.randn((n, T_lat) + tuple(img.shape[2:]), generator=g)
    at = torch.randn((n, 6, 7), generator=g)
    s = denoiser_sigmas()[999].repeat(n)
    act = Denoiser(model.dit)(xt, image_concat(img, T_lat), at, s, torch.full((n,), 999), model.text(ids),
                              torch.zeros(n, dtype=torch.long))[1].numpy()
    heading_report(run + (f" ({T_lat} latent frames)" if frames else "") + (" (instructions shuffled)" if shuffle_text else ""), act, ds, cfg["action_stats"], data_dir)


PHASES = ((0, 2, "first plan (k 0-2)"), (3, 8, "approach (k 3-8)"), (9, 14, "middle (k 9-14)"),
          (15, 10**9, "late (k >= 15)"))


@torch.no_grad()
def phase_gate(run: str, cache_dir: str, n: int, frames: int = 0, bs: int = 250) -> None:
    """The mid-episode gate: the posterior-mean chunk at the first denoising step (idx 999) for the
    start frame of windows of every phase (a first-frame-only cache made with --every-window, e.g.
    of held-out recorded episodes), per phase: arm MSE and gripper accuracy against the expert's
    chunk, and the heading of the first 3 actions where the expert moves sideways — each with the
    instructions shuffled beside it, and the per-phase mean predictor's MSE for scale."""

    cfg, tok, shift = load_run(run)
    ck = torch.load(os.path.join(run, "ckpt.pt"), map_location="cpu", weights_only=False)
    model = TinyVideoVLA(ck["vocab"], cfg["dit"]["out_channels"])
    model.load_state_dict(ck["ema"])
    model.eval()
    cache = LatentCache(cache_dir, tok, tinysim.TEXT_LEN, stats=cfg["action_stats"], shift=shift)
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(cache), generator=g)[: min(n, len(cache))]
    b = cache.batch(pick)
    k = cache.t["k"][pick]
    T = b["actions"]
    img = (b["image_mean"] * cfg["scaling_factor"]).permute(0, 2, 1, 3, 4)
    T_lat = frames or cfg["dit"]["latent_frames"]
    ids_shuf = b["ids"][torch.randperm(len(pick), generator=g)]
    out = {}
    for name, ids in (("own", b["ids"]), ("shuffled", ids_shuf)):
        acts = []
        for i in range(0, len(pick), bs):
            m = min(bs, len(pick) - i)
            xt = torch.randn((m, T_lat) + tuple(img.shape[2:]), generator=g)
            at = torch.randn((m, 6, 7), generator=g)
            acts.append(Denoiser(model.dit)(xt, image_concat(img[i: i + m], T_lat), at, denoiser_sigmas()[999].repeat(m),
                                            torch.full((m,), 999), model.text(ids[i: i + m]),
                                            torch.zeros(m, dtype=torch.long))[1])
        out[name] = torch.cat(acts)
    print(f"{run}: posterior mean at idx 999 ({T_lat} latent frames) on {len(pick)} window starts of {cache_dir} "
          f"(own instruction / shuffled)", flush=True)

    def heading45(a, sel):
        pv, yv = a[sel, :3, 3:5].sum(1), T[sel, :3, 3:5].sum(1)
        moves = yv.norm(dim=1) > 0.3
        cos = (pv * yv).sum(1) / (pv.norm(dim=1) * yv.norm(dim=1) + 1e-9)
        return float((cos[moves] > 0.7).float().mean()) if moves.any() else float("nan"), int(moves.sum())

    for lo, hi, label in PHASES + ((0, 10**9, "all"),):
        sel = (k >= lo) & (k <= hi)
        if not sel.any():
            continue
        mean = T[sel].mean(0, keepdim=True).expand_as(T[sel])
        h_own, nm = heading45(out["own"], sel)
        h_shuf, _ = heading45(out["shuffled"], sel)
        print(f"  {label:20s} n {int(sel.sum()):5d}  arm MSE {arm_mse(out['own'][sel], T[sel]):.4f} / "
              f"{arm_mse(out['shuffled'][sel], T[sel]):.4f} (mean {arm_mse(mean, T[sel]):.4f})  gripper "
              f"{grip_acc(out['own'][sel], T[sel]):.3f} / {grip_acc(out['shuffled'][sel], T[sel]):.3f}  "
              f"heading within 45 deg {h_own:.2f} / {h_shuf:.2f} (n {nm})", flush=True)


def latent_cnn(run: str, scenes: str, data_dir: str, vae_dir: str, steps: int) -> None:
    """Is the grounding in the VAE latent at all? baseline_cnn.py's conv net + instruction FiLM, its
    pixel stem replaced by one 3x3 conv on the (C, 8, 8) image latent, trained on a first-frame cache
    (`cache_latents.py --first-frame-only`) to regress the first chunk; then the same heading gate."""
    from baseline_cnn import Net

    cfg, tok, shift = load_run(run)
    scale = cfg["scaling_factor"]
    cache = LatentCache(scenes, tok, tinysim.TEXT_LEN, stats=cfg["action_stats"], shift=shift)
    x = cache.t["image_mean"][:, :, 0].float()
    x = (x - shift if shift is not None else x) * scale
    y, ids = cache.actions, cache.ids
    torch.manual_seed(0)
    net = Net(tok.get_vocab_size(), in_channels=x.shape[1])
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    for s in range(steps):
        idx = torch.randint(0, len(x), (128,))
        p = net(x[idx], ids[idx])
        loss = ((p[..., :6] - y[idx][..., :6]) ** 2).mean() \
            + torch.nn.functional.binary_cross_entropy_with_logits(p[..., 6], y[idx][..., 6])
        opt.zero_grad()
        loss.backward()
        opt.step()
        for gr in opt.param_groups:
            gr["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * s / steps))
        if (s + 1) % 500 == 0:
            print(f"latent cnn step {s + 1}/{steps}: loss {float(loss):.4f}", flush=True)
    net.eval()
    ds, m = first_frames(data_dir, vae_dir, shift, scale)
    with torch.no_grad():
        for shuffle in (False, True):
            act = net(m[:, :, 0], shuffled_ids(tok, ds, shuffle)).numpy()
            heading_report(f"latent CNN on {scenes} ({len(x)} scenes, {steps} steps)"
                           + (" (instructions shuffled)" if shuffle else ""), act, ds, cfg["action_stats"], data_dir)


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
    ap.add_argument("--latent-cnn", default="", help="with --heading: train a conv net on this first-frame cache's "
                    "latents (the run's scale, shift, tokenizer and statistics) and gate it instead of the DiT")
    ap.add_argument("--cnn-steps", type=int, default=3000)
    ap.add_argument("--frames", type=int, default=0, help="with --heading: also gate with only this many latent "
                    "frames fed (1 = the image frame alone, as train_dit.py --scene-frames 1)")
    ap.add_argument("--phase-gate", default="", help="a first-frame-only cache made with --every-window (held-out "
                    "episodes): the mid-episode gate per phase instead (with --frames: only that many latent frames)")
    ap.add_argument("--phase-samples", type=int, default=2000)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.phase_gate:
        for r in a.run:
            phase_gate(r, a.phase_gate, a.phase_samples, a.frames)
        return
    if a.heading and a.latent_cnn:
        latent_cnn(a.run[0], a.latent_cnn, a.heading, a.vae, a.cnn_steps)
        return
    if a.heading:
        for r in a.run:
            for fr in ([0, a.frames] if a.frames else [0]):
                heading(r, a.heading, a.vae, False, fr)
                heading(r, a.heading, a.vae, True, fr)
        return
    for r in a.run:
        probe_run(r, a.val_latents, a.windows, [int(v) for v in a.levels.split(",")], a.raw)
    if a.ridge:
        ridge(a.latents, a.val_latents, 6)


if __name__ == "__main__":
    main()
