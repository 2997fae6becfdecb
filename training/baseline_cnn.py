"""A plain behaviour-cloning baseline for the simulator: a small conv net on the 64x64 pixels with
the instruction as FiLM, regressing the 6x7 action chunk (arm: MSE on normalised actions, gripper:
BCE). It answers "what does a direct image->action regressor trained on the same demonstrations do
closed loop?" — the yardstick for the embedded VideoVLA (README, "Embedded model").

  train    python training/baseline_cnn.py train --out runs/cnn --data data/sim-train,data/sim-train-perturb \
               --val data/sim-val --steps 12000          (DIR:K takes only the first K windows per episode)
  serve    python training/baseline_cnn.py serve --run runs/cnn --port 8765
           then: videovla sim eval --policy ws://127.0.0.1:8765 --episodes 100 --jobs 2
  heading  python training/baseline_cnn.py heading --run runs/cnn --val data/sim-val [--shuffle-text]
           does the first planned chunk of each held-out episode head where the expert's does?

`serve` speaks openpi's websocket protocol with `websockets` and `openpi_client.msgpack_numpy`
(pip install websockets openpi-client, or run it with the openpi venv's site-packages on
PYTHONPATH); the other commands need only the training venv.
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
from tokenizers import Tokenizer
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinysim  # noqa: E402
from data import SimDataset, action_statistics, normalize_actions, unnormalize_actions  # noqa: E402
from videovla_ref.modeldir import tokenize  # noqa: E402


class Net(nn.Module):
    def __init__(self, vocab: int, aux: int = 0, in_channels: int = 0, stem_depth: int = 1):
        """64x64 pixels in, or with `in_channels` an 8x8 latent of that many channels (probe_image.py),
        through `stem_depth` 3x3 convs (3 = as many as the pixel stem has)."""
        super().__init__()
        self.aux = nn.Linear(256, aux) if aux else None
        self.emb = nn.EmbeddingBag(vocab, 64, mode="mean")
        latent_stem = [nn.Conv2d(in_channels, 64, 3, 1, 1)] + sum(
            ([nn.SiLU(), nn.Conv2d(64, 64, 3, 1, 1)] for _ in range(stem_depth - 1)), [])
        self.stem = (latent_stem[0] if stem_depth == 1 else nn.Sequential(*latent_stem)) if in_channels else nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1), nn.SiLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.SiLU(), nn.Conv2d(64, 64, 4, 2, 1))
        self.film = nn.Linear(64, 128)
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(64, 64, 3, 1, 1), nn.SiLU(), nn.Conv2d(64, 64, 3, 1, 1), nn.SiLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 64 + 64, 256), nn.SiLU(), nn.Linear(256, 42))

    def features(self, x, ids):
        t = self.emb(ids)
        h = self.stem(x)
        s, b = self.film(t).chunk(2, -1)
        h = self.body(h * (1 + s[:, :, None, None]) + b[:, :, None, None])
        return self.head[2](self.head[1](self.head[0](torch.cat([h.flatten(1), t], 1))))

    def forward(self, x, ids, with_aux: bool = False):
        f = self.features(x, ids)
        out = self.head[3](f).view(-1, 6, 7)
        return (out, self.aux(f)) if with_aux else out


def pixels(u8: torch.Tensor) -> torch.Tensor:
    return u8.permute(0, 3, 1, 2).float() / 127.5 - 1


def load_windows(spec: str):
    """Key frames, 6-action chunks (raw) and instructions of every window of a recorded dataset;
    `DIR:K` keeps the first K windows of each episode."""
    root, max_k = (spec.rsplit(":", 1)[0], int(spec.rsplit(":", 1)[1])) if ":" in spec else (spec, 1 << 30)
    with open(os.path.join(root, "meta.json")) as f:
        sub = json.load(f)["substeps"]
    ds = SimDataset(root, num_frames=6 * sub + 1)
    xs, acts, texts, goals = [], [], [], []
    for e in range(len(ds)):
        ep = ds.episodes[e]
        n = ep["action_count"]
        m = min(n, max_k)
        a = ds.episode_actions(e)
        xs.append(ds.episode_frames(e)[np.arange(m) * sub])
        acts.append(a[np.minimum(np.arange(m)[:, None] + np.arange(6)[None], n - 1)])
        texts += [ep["instruction"]] * m
        goals.append(np.repeat(episode_goal(ds, e, a)[None], m, 0))
    return torch.from_numpy(np.concatenate(xs)), np.concatenate(acts), texts, torch.from_numpy(np.concatenate(goals))


def episode_goal(ds: SimDataset, e: int, a: np.ndarray) -> np.ndarray:
    """Where the expert's gripper is when it first closes (the target) and when it next opens (the
    destination; the target again for pick), x and y / 0.15 m: a grounding label for every window."""
    ep = ds.episodes[e]
    n = len(a)
    shard = ds._shard(ep["shard"]).get_slice("ee_pose")
    pose = np.asarray(shard[ep["frame_start"]: ep["frame_start"] + ep["frame_count"]])
    close = int(np.argmax(a[:, 6] < 0.5)) if (a[:, 6] < 0.5).any() else n - 1
    after = np.nonzero(a[close:, 6] > 0.5)[0]
    release = close + int(after[0]) if len(after) else close
    return (np.concatenate([pose[close * ds.substeps, :2], pose[release * ds.substeps, :2]]) / 0.15).astype(np.float32)


def load_latent_windows(cache: str):
    """The same as load_windows from a `cache_latents.py --first-frame-only --every-window` cache:
    the VAE image latent of each window's start frame (C, 8, 8) instead of its pixels; goals from
    the recording the cache was made from."""
    with open(os.path.join(cache, "meta.json")) as f:
        meta = json.load(f)
    ds = SimDataset(meta["data"], num_frames=6 * json.load(open(os.path.join(meta["data"], "meta.json")))["substeps"] + 1)
    goal = np.stack([episode_goal(ds, e, ds.episode_actions(e)) for e in range(len(ds))])
    xs, acts, eps = [], [], []
    for sh in meta["shards"]:
        t = load_file(os.path.join(cache, sh))
        xs.append(t["image_mean"][:, :, 0])
        acts.append(t["actions"].numpy())
        eps.append(t["episode"].numpy())
    ep = np.concatenate(eps)
    return torch.cat(xs), np.concatenate(acts), [ds.episodes[e]["instruction"] for e in ep], torch.from_numpy(goal[ep])


class Text:
    def __init__(self, path: str):
        self.tok = Tokenizer.from_file(path)
        self.cache: dict[str, list[int]] = {}

    def ids(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([self.cache.setdefault(t, tokenize(self.tok, t, tinysim.TEXT_LEN)) for t in texts])


class Inputs:
    """What the net sees: the 64x64 pixels, or (`--latents`) the VAE image latent of the frame,
    standardised per element with the training set's mean and std."""

    def __init__(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None, vae_dir: str = ""):
        self.mean, self.std, self.vae_dir, self.vae = mean, std, vae_dir, None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return pixels(x) if self.mean is None else (x.float() - self.mean) / self.std

    def from_image(self, image_u8: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image_u8))[None]
        if self.mean is None:
            return pixels(x)
        if self.vae is None:
            from cache_latents import load_vae
            from data import to_pixels

            self.vae, self._to_pixels = load_vae(self.vae_dir)[0], to_pixels
        with torch.no_grad():
            return self(self.vae.encode(self._to_pixels(x.numpy()[:, None]))[0][:, :, 0])


def load_run(run: str, text: Text):
    sd = load_file(os.path.join(run, "net.safetensors"))
    with open(os.path.join(run, "stats.json")) as f:
        stats = json.load(f)
    mean, std = sd.pop("in_mean", None), sd.pop("in_std", None)
    net = Net(text.tok.get_vocab_size(), aux=sd["aux.weight"].shape[0] if "aux.weight" in sd else 0,
              in_channels=0 if mean is None else mean.shape[0], stem_depth=stats.get("stem_depth", 1))
    net.load_state_dict(sd)
    net.eval()
    return net, stats, Inputs(mean, std, stats.get("vae", ""))


def train(a, text: Text):
    torch.manual_seed(a.seed)
    load = load_latent_windows if a.latents else load_windows
    parts = [load(d) for d in a.data.split(",")]
    x = torch.cat([p[0] for p in parts])
    acts = np.concatenate([p[1] for p in parts])
    texts = sum((p[2] for p in parts), [])
    goal = torch.cat([p[3] for p in parts])
    stats = action_statistics(parts[0][1][:, 0])  # every action of the first dataset once
    y = torch.from_numpy(normalize_actions(acts, stats))
    ids = text.ids(texts)
    inp = Inputs()
    if a.latents:
        with open(os.path.join(a.data.split(",")[0], "meta.json")) as f:
            vae_dir = json.load(f)["vae"]
        xs = x[torch.randperm(len(x))[:20000]].float()
        inp = Inputs(xs.mean(0), xs.std(0) + 1e-3, vae_dir)
        stats["vae"] = vae_dir
    xv, av, tv, gv = load(a.val)
    xva, yva, iva = inp(xv[::4]), torch.from_numpy(normalize_actions(av[::4], stats)), text.ids(tv[::4])
    print(f"{len(x)} windows; {len(xva)} held-out", flush=True)
    net = Net(text.tok.get_vocab_size(), aux=4 if a.aux_goal > 0 else 0, in_channels=x.shape[1] if a.latents else 0,
              stem_depth=a.stem_depth)
    stats["stem_depth"] = a.stem_depth
    opt = torch.optim.AdamW(net.parameters(), a.lr, weight_decay=1e-4)
    t0 = time.time()
    for s in range(a.steps):
        idx = torch.randint(0, len(x), (a.batch,))
        p, g = net(inp(x[idx]), ids[idx], with_aux=True) if a.aux_goal > 0 else (net(inp(x[idx]), ids[idx]), None)
        loss = ((p[..., :6] - y[idx][..., :6]) ** 2).mean() \
            + nn.functional.binary_cross_entropy_with_logits(p[..., 6], y[idx][..., 6])
        if g is not None:
            loss = loss + a.aux_goal * ((g - goal[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        for g in opt.param_groups:
            g["lr"] = a.lr * 0.5 * (1 + np.cos(np.pi * s / a.steps))
        if (s + 1) % 1000 == 0 or s + 1 == a.steps:
            with torch.no_grad():
                p = net(xva, iva)
                if a.aux_goal > 0:
                    gerr = float((net(xva, iva, with_aux=True)[1][:, :2] - gv[::4][:, :2]).norm(dim=1).mean()) * 15
                    print(f"  target position error {gerr:.1f} cm", flush=True)
            mse = float(((p[..., :6] - yva[..., :6]) ** 2).mean())
            grip = float(((p[..., 6] > 0) == (yva[..., 6] > 0.5)).float().mean())
            print(f"step {s + 1}/{a.steps}: held-out arm MSE {mse:.3f}, gripper {grip:.3f} | {time.time() - t0:.0f} s",
                  flush=True)
    os.makedirs(a.out, exist_ok=True)
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    if inp.mean is not None:
        sd.update(in_mean=inp.mean.contiguous(), in_std=inp.std.contiguous())
    save_file(sd, os.path.join(a.out, "net.safetensors.tmp"))
    os.replace(os.path.join(a.out, "net.safetensors.tmp"), os.path.join(a.out, "net.safetensors"))
    with open(os.path.join(a.out, "stats.json"), "w") as f:
        json.dump(stats, f)


def act(net, stats, inp: Inputs, text: Text, image_u8: np.ndarray, prompt: str) -> np.ndarray:
    with torch.no_grad():
        p = net(inp.from_image(image_u8), text.ids([prompt]))[0].numpy()
    p[:, 6] = (p[:, 6] > 0).astype(np.float32)
    return unnormalize_actions(p, stats).astype(np.float32)


def serve(a, text: Text):
    try:
        from openpi_client import msgpack_numpy
        from websockets.sync.server import serve as ws_serve
    except ImportError as e:
        sys.exit(f"serve needs websockets and openpi-client ({e}); pip install websockets openpi-client")
    torch.set_num_threads(1)
    net, stats, inp = load_run(a.run, text)

    def handler(ws):
        ws.send(msgpack_numpy.packb({"name": f"baseline-cnn:{a.run}"}))
        for msg in ws:
            obs = msgpack_numpy.unpackb(msg)
            ws.send(msgpack_numpy.packb({"actions": act(net, stats, inp, text, obs["observation/image"], obs["prompt"])}))

    with ws_serve(handler, "127.0.0.1", a.port, compression=None, max_size=None) as srv:
        print(f"serving {a.run} on ws://127.0.0.1:{a.port}", flush=True)
        srv.serve_forever()


def heading(a, text: Text):
    net, stats, inp = load_run(a.run, text)
    ds = SimDataset(a.val)
    rows = []
    for e in range(len(ds)):
        ep = ds.episodes[e]
        prompt = ds.episodes[(e + 1) % len(ds)]["instruction"] if a.shuffle_text else ep["instruction"]
        with torch.no_grad():
            p = net(inp.from_image(ds.episode_frames(e)[0]), text.ids([prompt]))[0]
        y = normalize_actions(ds.episode_actions(e)[:3], stats)
        pv, yv = p[:3, 3:5].sum(0).numpy(), y[:, 3:5].sum(0)
        cos = float(pv @ yv / (np.linalg.norm(pv) * np.linalg.norm(yv) + 1e-9))
        tgt = ep["objects"][ep["target"]].split()[0]
        same_colour = sum(o.split()[0] == tgt for o in ep["objects"]) > 1
        rows.append((ep["task"], same_colour, cos, float(np.linalg.norm(yv)) > 0.3))
    task = np.array([r[0] for r in rows])
    sc = np.array([r[1] for r in rows])
    cos = np.array([r[2] for r in rows])
    moves = np.array([r[3] for r in rows])
    print(f"{a.run}{' (instructions shuffled)' if a.shuffle_text else ''}: first planned chunk vs the expert's, "
          f"horizontal heading over 3 actions, {moves.sum()} held-out episodes where the expert moves sideways")
    for name, m in [("all", moves), ("another object of the target's colour", moves & sc),
                    ("no other object of that colour", moves & ~sc)] + \
                   [(f"task {t}", moves & (task == t)) for t in ("pick", "stack", "place")]:
        print(f"  {name:38s} n={m.sum():3d}  within 45 deg: {np.mean(cos[m] > 0.7):.2f}  "
              f"opposite (cos < 0): {np.mean(cos[m] < 0):.2f}  median cos {np.median(cos[m]):.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default="models/tiny-sim/tokenizer.json")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("--data", required=True, help="recorded datasets, comma-separated; DIR:K = first K windows per episode")
    t.add_argument("--val", required=True)
    t.add_argument("--steps", type=int, default=12000)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--aux-goal", type=float, default=0.0,
                   help="weight of an auxiliary loss: predict where the expert grasps and releases (x, y) from every window")
    t.add_argument("--stem-depth", type=int, default=1, help="with --latents: 3x3 convs in the latent stem")
    t.add_argument("--latents", action="store_true",
                   help="--data and --val are `cache_latents.py --first-frame-only --every-window` caches: the net "
                        "reads the VAE image latent (C, 8, 8) instead of the pixels (is the latent enough for a policy?)")
    s = sub.add_parser("serve")
    s.add_argument("--run", required=True)
    s.add_argument("--port", type=int, default=8765)
    h = sub.add_parser("heading")
    h.add_argument("--run", required=True)
    h.add_argument("--val", required=True)
    h.add_argument("--shuffle-text", action="store_true")
    a = ap.parse_args()
    text = Text(a.tokenizer)
    if a.cmd == "train":
        torch.set_num_threads(a.threads)
        train(a, text)
    elif a.cmd == "serve":
        serve(a, text)
    else:
        heading(a, text)


if __name__ == "__main__":
    main()
