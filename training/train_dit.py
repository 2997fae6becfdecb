"""Stage 2: joint video + action denoising of the tiny VideoVLA, exactly the released loss
(videovla-spec.md §6, `VideoDiffusionLoss_withact`), on latents cached by cache_latents.py.

Per sample: idx ~ U{0..999}; s = sigmas_1000[idx] (zero-SNR table, `sampling.denoiser_sigmas`);
x0 = scale * (mean + std * eps) (posterior SAMPLED); x_t = s x0 + sqrt(1-s^2) eps_v and
a_t = s a0 + sqrt(1-s^2) eps_a (own noises, ONE shared timestep); the denoiser
(`sampling.Denoiser`: c_skip = s, c_out = -sqrt(1-s^2), DiT time input = idx) gives x0_hat, a0_hat;
loss = w_v * mean((x0_hat - x0)^2 / (1-s^2)) + w_a * mean((a0_hat - a0)^2 / (1-s^2)) with
w_v = w_a = 1 (`--video-loss-weight 0` = the paper's action-only ablation, same budget).
Conditioning: T5 embedding of the instruction zeroed with p = 0.1 (per sample), image latent
(posterior sample of the noisy first frame, × scale) zeroed with p = 0.05, in frame 0 of the
channel-concat (`sampling.image_concat`). The tiny T5 encoder is trained jointly from scratch.
Actions are normalised (arm dims to [-1, 1] with q01/q99, gripper 0/1; data.normalize_actions).

Checkpoint + resume (runs/dit/ckpt.pt), EMA of the weights (exported), progress lines and
log.jsonl, held-out action error of DDIM-10 sampling with the EMA weights at every eval.

    python training/train_dit.py --latents data/latents --val-latents data/latents-val --out runs/dit \
        --steps 4000 --minutes 50
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import T5EncoderModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tinysim  # noqa: E402
from common import Progress, cosine_lr, load_ckpt, save_ckpt, set_threads  # noqa: E402
from data import normalize_actions  # noqa: E402
from videovla_ref.dit import VideoVLADiT  # noqa: E402
from videovla_ref.modeldir import tokenize, word_level_tokenizer  # noqa: E402
from videovla_ref.sampling import Denoiser, Guidance, denoiser_sigmas, image_concat, sample  # noqa: E402

P_TEXT_DROP = 0.1
P_IMAGE_DROP = 0.05


# ------------------------------------------------------------------------------------------------
# data


def read_cache_metas(roots: str) -> tuple[list[str], list[dict], list[str]]:
    """`roots`: one cache directory or several, comma-separated. Returns the directories, their
    meta.json contents, and the instructions of all their episodes (episode ids offset in order)."""
    dirs = [r for r in roots.split(",") if r]
    metas = []
    for r in dirs:
        with open(os.path.join(r, "meta.json")) as f:
            metas.append(json.load(f))
    return dirs, metas, [i for m in metas for i in m["instructions"]]


class LatentCache:
    """All cached windows in memory (float16 posteriors), token ids per window. `root` may list
    several caches, comma-separated: their windows are concatenated, the action statistics and
    scaling are the first one's."""

    def __init__(self, root: str, tokenizer, text_len: int, stats: dict | None = None,
                 shift: torch.Tensor | None = None):
        dirs, metas, instr = read_cache_metas(root)
        self.meta = dict(metas[0], instructions=instr)
        parts: dict[str, list] = {}
        offset = 0
        for d, m in zip(dirs, metas):
            for s in m["shards"]:
                for k, v in load_file(os.path.join(d, s)).items():
                    parts.setdefault(k, []).append(v + offset if k == "episode" else v)
            offset += len(m["instructions"])
        self.t = {k: torch.cat(v) for k, v in parts.items()}
        self.stats = stats if stats is not None else self.meta["action_stats"]
        self.actions = torch.from_numpy(normalize_actions(self.t["actions"].numpy(), self.stats))
        ids_per_ep = {}
        for e in self.t["episode"].tolist():
            if e not in ids_per_ep:
                ids_per_ep[e] = tokenize(tokenizer, instr[e], text_len)
        self.ids = torch.tensor([ids_per_ep[e] for e in self.t["episode"].tolist()], dtype=torch.long)
        self.instructions = [instr[e] for e in self.t["episode"].tolist()]
        self.shift = shift  # (C, h, w) latent mean removed from every latent (VAE `latent_shift`), or None

    def mean_latent(self, n: int = 8192) -> torch.Tensor:
        """Per-position mean (C, h, w) of the video posterior means over (up to n) windows and all frames."""
        return self.t["video_mean"][:n].float().mean(dim=(0, 2))

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx: torch.Tensor) -> dict:
        im = self.t["image_mean"][idx].float()
        if self.shift is not None:
            im = im - self.shift[None, :, None]
        b = {"image_mean": im, "image_logvar": self.t["image_logvar"][idx].float(),
             "actions": self.actions[idx], "ids": self.ids[idx]}
        if "video_mean" in self.t:  # absent in a first-frame-only cache (cache_latents.py --first-frame-only)
            vm = self.t["video_mean"][idx].float()
            b["video_mean"] = vm - self.shift[None, :, None] if self.shift is not None else vm
            b["video_logvar"] = self.t["video_logvar"][idx].float()
        return b


def build_tokenizer(instructions: list[str]):
    words = set(tinysim.SIM_WORDS)
    for s in instructions:
        words.update(s.lower().split())
    return word_level_tokenizer(sorted(words))


# ------------------------------------------------------------------------------------------------
# model


def init_dit_(dit: VideoVLADiT, seed: int) -> VideoVLADiT:
    """DiT-style init: xavier linears/convs, zero biases, adaLN-zero (modulations and the final
    projections start at 0, so every block starts as the identity and v_hat = 0), small tables."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in dit.named_modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                w = m.weight
                fan_in = w[0].numel()
                fan_out = w.shape[0] * (w[0].numel() // (w.shape[1] if w.ndim > 1 else 1))
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                w.copy_((torch.rand(w.shape, generator=g) * 2 - 1) * bound)
                if m.bias is not None:
                    m.bias.zero_()
        ada = dit.mixins["adaln_layer"]
        for seq in ada.adaLN_modulations:
            seq[-1].weight.zero_()
            seq[-1].bias.zero_()
        fl = dit.mixins["final_layer"]
        for lin in (fl.linear, fl.action_linear, fl.adaLN_modulation[-1], fl.action_adaLN_modulation[-1]):
            lin.weight.zero_()
            lin.bias.zero_()
        pos = dit.mixins["pos_embed"]
        for p in (pos.pos_embedding, pos.action_pos_embedding, pos.action_robotid_embedding.weight,
                  dit.transformer.position_embeddings.weight):
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        for lin in (dit.time_embed[0], dit.time_embed[2]):
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.02)
    return dit


def fresh_text_encoder_(model: "TinyVideoVLA", ema: "TinyVideoVLA", seed: int) -> None:
    """A new T5 (the init of a run from scratch, another seed) in the model and its EMA; the DiT stays."""
    torch.manual_seed(seed + 1000)
    t5 = T5EncoderModel(model.t5.config)
    model.t5.load_state_dict(t5.state_dict())
    ema.t5.load_state_dict(t5.state_dict())


class TinyVideoVLA(nn.Module):
    def __init__(self, vocab_size: int, latent_channels: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.t5 = T5EncoderModel(tinysim.t5_config(vocab_size, **tinysim.PRESET["t5"]))
        d = tinysim.PRESET["t5"]["d_model"]
        self.dit = init_dit_(VideoVLADiT(tinysim.dit_config(latent_channels=latent_channels, text_hidden=d,
                                                            **tinysim.PRESET["dit"])), seed + 1)

    def text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.t5(input_ids=ids).last_hidden_state  # no attention mask (released convention)


# ------------------------------------------------------------------------------------------------
# loss


def diffusion_loss(model: TinyVideoVLA, b: dict, scale: float, sigmas: torch.Tensor, gen: torch.Generator,
                   video_weight: float = 1.0, action_weight: float = 1.0, robot_id: int = tinysim.ROBOT_ID):
    vm, vl = b["video_mean"], b["video_logvar"]
    B = vm.shape[0]
    rnd = lambda shape: torch.randn(shape, generator=gen)  # noqa: E731
    # posterior samples (B,C,T,h,w) -> (B,T,C,h,w), x scaling factor
    x0 = ((vm + torch.exp(0.5 * vl) * rnd(vm.shape)) * scale).permute(0, 2, 1, 3, 4)
    im, il = b["image_mean"], b["image_logvar"]
    img = ((im + torch.exp(0.5 * il) * rnd(im.shape)) * scale).permute(0, 2, 1, 3, 4)  # (B,1,C,h,w)
    keep_img = (torch.rand(B, generator=gen) >= P_IMAGE_DROP).float().view(B, 1, 1, 1, 1)
    concat = image_concat(img * keep_img, x0.shape[1])
    text = model.text(b["ids"])
    keep_txt = (torch.rand(B, generator=gen) >= P_TEXT_DROP).float().view(B, 1, 1)
    text = text * keep_txt
    a0 = b["actions"]
    idx = torch.randint(0, len(sigmas), (B,), generator=gen)
    s = sigmas[idx]
    c = (1 - s**2).sqrt()
    xt = s.view(B, 1, 1, 1, 1) * x0 + c.view(B, 1, 1, 1, 1) * rnd(x0.shape)
    at = s.view(B, 1, 1) * a0 + c.view(B, 1, 1) * rnd(a0.shape)
    x0_hat, a0_hat = Denoiser(model.dit)(xt, concat, at, s, idx, text, torch.full((B,), robot_id, dtype=torch.long))
    w = 1.0 / (1 - s**2)
    lv = ((x0_hat - x0) ** 2).mean(dim=(1, 2, 3, 4)) * w
    la = ((a0_hat - a0) ** 2).mean(dim=(1, 2)) * w
    loss = video_weight * lv.mean() + action_weight * la.mean()
    return loss, {"video": float(lv.mean().detach()), "action": float(la.mean().detach())}


def scene_loss(model: TinyVideoVLA, b: dict, scale: float, sigmas: torch.Tensor, gen: torch.Generator,
               min_idx: int, robot_id: int = tinysim.ROBOT_ID, frames: int = 0):
    """The action term of the released loss for a first-frame-only sample (no recorded video), at the
    highest noise levels only: idx ~ U{min_idx..999}. There s is ~0 (exactly 0 at 999 on the zero-SNR
    schedule), so x_t is noise whatever the video, and the video's x0 is taken as the (latent-shift
    centred) mean, 0. What these samples teach is the first denoising steps — where a plan picks its
    target — from many more scenes than full windows could afford. Same dropouts as diffusion_loss.
    `frames` > 0 feeds only that many latent frames (1: the image frame alone, 16 video tokens instead
    of 208 — a curriculum for cost; the position tables are prefixes, so the weights are the same);
    0 = the model's latent_frames."""
    im, il = b["image_mean"], b["image_logvar"]
    B = im.shape[0]
    rnd = lambda shape: torch.randn(shape, generator=gen)  # noqa: E731
    img = ((im + torch.exp(0.5 * il) * rnd(im.shape)) * scale).permute(0, 2, 1, 3, 4)
    keep_img = (torch.rand(B, generator=gen) >= P_IMAGE_DROP).float().view(B, 1, 1, 1, 1)
    T = frames or model.dit.cfg.latent_frames
    concat = image_concat(img * keep_img, T)
    text = model.text(b["ids"]) * (torch.rand(B, generator=gen) >= P_TEXT_DROP).float().view(B, 1, 1)
    a0 = b["actions"]
    idx = torch.randint(min_idx, len(sigmas), (B,), generator=gen)
    s = sigmas[idx]
    c = (1 - s**2).sqrt()
    xt = c.view(B, 1, 1, 1, 1) * rnd((B, T) + tuple(img.shape[2:]))
    at = s.view(B, 1, 1) * a0 + c.view(B, 1, 1) * rnd(a0.shape)
    _, a0_hat = Denoiser(model.dit)(xt, concat, at, s, idx, text, torch.full((B,), robot_id, dtype=torch.long))
    return (((a0_hat - a0) ** 2).mean(dim=(1, 2)) / (1 - s**2)).mean()


@torch.no_grad()
def eval_actions(model: TinyVideoVLA, cache: LatentCache, scale: float, n: int = 64, steps: int = 10,
                 guidance: float = 3.0, seed: int = 0, bs: int = 32) -> dict:
    """DDIM sampling from the posterior mean of the (clean) first frame; error of the normalised actions
    against the expert's: MSE over the arm dims, gripper accuracy."""
    g = torch.Generator().manual_seed(seed)
    n = min(n, len(cache))
    errs, grip = [], []
    model.eval()
    for i in range(0, n, bs):
        idx = torch.arange(i, min(n, i + bs))
        b = cache.batch(idx)
        B = len(idx)
        img = (b["image_mean"] * scale).permute(0, 2, 1, 3, 4)
        text = model.text(b["ids"])
        C, T, h, w = b["video_mean"].shape[1:]
        x = torch.randn(B, T, C, h, w, generator=g)
        a = torch.randn(B, 6, 7, generator=g)
        gd = Guidance(scale=guidance, exp=5) if guidance > 0 else None
        r = sample(model.dit, text, img, x, a, torch.zeros(B, dtype=torch.long), steps, "ddim", guidance=gd)
        errs.append(((r.action[..., :6] - b["actions"][..., :6]) ** 2).mean(dim=(1, 2)))
        grip.append(((r.action[..., 6] > 0.5).float() == b["actions"][..., 6]).float().mean(dim=1))
    model.train()
    return {"arm_mse": float(torch.cat(errs).mean()), "grip_acc": float(torch.cat(grip).mean())}


# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - decay)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latents", default="data/latents", help="cache directory, or several comma-separated")
    ap.add_argument("--val-latents", default="data/latents-val")
    ap.add_argument("--out", default="runs/dit")
    ap.add_argument("--steps", type=int, default=4000, help="LR schedule length (cosine)")
    ap.add_argument("--minutes", type=float, default=0, help="stop (and save) after this wall time; 0 = none")
    ap.add_argument("--batch", type=int, default=32, help="windows per step (0 = scene samples only)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--scale", type=float, default=0.0,
                    help="latent scaling factor (0 = the cache's content_scaling_factor, 0.4 / std of the "
                         "per-window deviation from the mean latent). The sim camera and table are static, so "
                         "the latent std is mostly a fixed spatial pattern and the per-sample content is ~15x "
                         "smaller; 4.0 puts the content at ~0.4 std (see README)")
    ap.add_argument("--latent-shift", choices=["mean", "none"], default="mean",
                    help="mean: subtract the training latents' per-position mean (C, h, w) before scaling (exported "
                         "as the VAE's latent_shift). The static sim scene makes that mean pattern ~14x larger than "
                         "the per-window content; left in, the action tokens never learned to read the image "
                         "(README). none: the released convention, scale only")
    ap.add_argument("--video-loss-weight", type=float, default=1.0)
    ap.add_argument("--action-loss-weight", type=float, default=1.0)
    ap.add_argument("--scene-latents", default="",
                    help="first-frame-only caches (cache_latents.py --first-frame-only), comma-separated: each step "
                         "adds --scene-batch of their samples with the action loss at the highest noise levels "
                         "(scene_loss) — not part of the released loss")
    ap.add_argument("--scene-batch", type=int, default=16)
    ap.add_argument("--scene-min-t", type=int, default=900, help="scene samples draw idx from [this, 999]")
    ap.add_argument("--scene-weight", type=float, default=1.0)
    ap.add_argument("--scene-frames", default="0",
                    help="latent frames fed for scene samples (1 = the image frame only, ~8x cheaper; 0 = all); "
                         "a comma-separated list cycles step by step, e.g. 0,1")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh-text-encoder", action="store_true",
                    help="with --init: keep the DiT, start the T5 text encoder afresh (model and EMA). A T5 trained "
                         "jointly while the DiT ignored the words stays in a state the DiT cannot learn to bind from "
                         "(README \"Embedded model\", eighth session); a fresh one learns it within ~600 steps of scene samples")
    ap.add_argument("--init", default="",
                    help="warm start: model and EMA weights from this checkpoint (a finished run's ckpt.pt), fresh "
                         "optimiser and LR schedule; ignored when --out already holds a checkpoint (resume)")
    ap.add_argument("--new-latent-space", action="store_true",
                    help="with --init: the caches come from a different VAE than the init run's, so take the latent "
                         "scale and shift from these caches instead of the init run's (the DiT's weights are kept)")
    a = ap.parse_args()
    set_threads(a.threads)
    scene_frames = [int(v) for v in a.scene_frames.split(",")]
    os.makedirs(a.out, exist_ok=True)
    _, metas, instructions = read_cache_metas(a.latents)
    meta = metas[0]
    init_dir = os.path.dirname(a.init) if a.init else ""
    if init_dir and os.path.exists(os.path.join(init_dir, "tokenizer.json")):
        # A warm start keeps the vocabulary (and so the embedding table) of the run it starts from.
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(init_dir, "tokenizer.json"))
        unknown = sorted({w for s in instructions for w in s.lower().split()} - set(tok.get_vocab()))
        if unknown:
            sys.exit(f"--init {a.init}: its vocabulary lacks {unknown[:8]}; train from scratch instead")
    else:
        tok = build_tokenizer(instructions)
    tok.save(os.path.join(a.out, "tokenizer.json"))
    # A warm start keeps what defines the model's inputs and outputs: the latent scale and the action
    # statistics of the run it starts from (otherwise the first cache listed would silently redefine them).
    init_info = {}
    if init_dir and os.path.exists(os.path.join(init_dir, "config.json")):
        with open(os.path.join(init_dir, "config.json")) as f:
            init_info = json.load(f)
    scale = a.scale or float((not a.new_latent_space and init_info.get("scaling_factor")) or
                             meta.get("content_scaling_factor", meta["scaling_factor"]))
    cache = LatentCache(a.latents, tok, tinysim.TEXT_LEN, stats=init_info.get("action_stats"))
    shift = None
    if a.latent_shift == "mean":
        shift_path = os.path.join(a.out, "latent_shift.safetensors")
        init_shift = os.path.join(init_dir, "latent_shift.safetensors") if init_dir else ""
        if os.path.exists(shift_path):  # resume: the same shift
            shift = load_file(shift_path)["latent_shift"]
        elif init_shift and os.path.exists(init_shift) and not a.new_latent_space:  # warm start: the shift its weights were trained with
            shift = load_file(init_shift)["latent_shift"]
            save_file({"latent_shift": shift.contiguous()}, shift_path + ".tmp")
            os.replace(shift_path + ".tmp", shift_path)
        else:
            shift = cache.mean_latent()
            save_file({"latent_shift": shift.contiguous()}, shift_path + ".tmp")
            os.replace(shift_path + ".tmp", shift_path)
        cache.shift = shift
    scenes = LatentCache(a.scene_latents, tok, tinysim.TEXT_LEN, stats=cache.stats, shift=shift) \
        if a.scene_latents else None
    val = LatentCache(a.val_latents, tok, tinysim.TEXT_LEN, stats=cache.stats, shift=shift) if os.path.exists(
        os.path.join(a.val_latents, "meta.json")) else None
    C = cache.t["video_mean"].shape[1]
    model = TinyVideoVLA(tok.get_vocab_size(), C, seed=a.seed)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.99), weight_decay=0.01)
    step = 0
    ckpt_path = os.path.join(a.out, "ckpt.pt")
    ck = load_ckpt(ckpt_path)
    if ck is not None:
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    elif a.init:
        ck = load_ckpt(a.init)
        if ck is None:
            sys.exit(f"--init {a.init}: no such checkpoint; give a run's ckpt.pt")
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        if a.fresh_text_encoder:
            fresh_text_encoder_(model, ema, seed=a.seed)
        print(f"warm start from {a.init} (its step {ck['step']}); new schedule of {a.steps} steps"
              + (", fresh text encoder" if a.fresh_text_encoder else ""), flush=True)
    info = {"args": vars(a), "scaling_factor": scale, "latent_shift": shift is not None, "vae_config": meta["vae_config"],
            "action_stats": cache.stats, "dit": model.dit.cfg.to_dict(), "windows": len(cache), "scene_windows": len(scenes) if scenes is not None else 0,
            "params": {"dit": sum(p.numel() for p in model.dit.parameters()),
                       "t5": sum(p.numel() for p in model.t5.parameters())}}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"dit: {len(cache)} windows, params {info['params']}, scale {scale}", flush=True)
    sigmas = denoiser_sigmas()
    gen = torch.Generator().manual_seed(a.seed * 7919 + step)
    prog = Progress(a.out, a.steps, step, "dit" if a.video_loss_weight else "dit-action-only")
    t0 = time.time()
    model.train()
    sums = {"loss": 0.0, "video": 0.0, "action": 0.0}
    nsum = 0

    def save():
        save_ckpt(ckpt_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                              "step": step, "vocab": tok.get_vocab_size()})

    if not a.batch and scenes is None:
        sys.exit("--batch 0 trains on scene samples only: give --scene-latents")
    while step < a.steps:
        idx = torch.randint(0, len(cache), (a.batch,), generator=gen)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, a.steps, a.lr, warmup=100)
        if a.batch:
            loss, parts = diffusion_loss(model, cache.batch(idx), scale, sigmas, gen, a.video_loss_weight,
                                         a.action_loss_weight)
        else:
            loss, parts = torch.zeros(()), {"video": 0.0, "action": 0.0}
        if scenes is not None:
            sidx = torch.randint(0, len(scenes), (a.scene_batch,), generator=gen)
            fr = scene_frames[step % len(scene_frames)]
            ls = scene_loss(model, scenes.batch(sidx), scale, sigmas, gen, a.scene_min_t, frames=fr)
            loss = loss + a.scene_weight * ls
            parts["scene"] = float(ls.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_update(ema, model, min(a.ema, (1 + step) / (10 + step)))
        step += 1
        sums["loss"] += float(loss.detach())
        sums["video"] += parts["video"]
        sums["action"] += parts["action"]
        if "scene" in parts:
            sums["scene"] = sums.get("scene", 0.0) + parts["scene"]
        nsum += 1
        out_of_time = a.minutes and (time.time() - t0) > a.minutes * 60
        if step % 25 == 0 or step == a.steps or out_of_time:
            prog.log(step - 1, **{k: v / nsum for k, v in sums.items()}, grad_norm=float(gn),
                     lr=opt.param_groups[0]["lr"])
            sums = {k: 0.0 for k in sums}
            nsum = 0
        if step % a.ckpt_every == 0 or step == a.steps or out_of_time:
            save()
        if val is not None and (step % a.eval_every == 0 or step == a.steps or out_of_time):
            r = eval_actions(ema, val, scale)
            prog.log(step - 1, val_arm_mse=r["arm_mse"], val_grip_acc=r["grip_acc"])
        if out_of_time:
            print(f"time budget reached at step {step}", flush=True)
            break
    save()
    print(f"done: step {step} in {(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
