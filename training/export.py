"""Export the trained tiny VideoVLA to a model folder (`models/tiny-sim`), the format the Rust
`VideoVla::load` reads (videovla_ref/modeldir.py), plus `dataset_statistics.json` (OpenVLA/CogACT
format) for unnormalising the actions.

    python training/export.py --vae runs/vae --latents data/latents --dit runs/dit --out models/tiny-sim \
        --guidance auto

Actions the DiT predicts are normalised: arm dims [droll, dpitch, dyaw, dx, dy, dz] mapped to
[-1, 1] with the 1st/99th percentiles (a = 0.5 (n + 1) (q99 - q01) + q01 undoes it), the gripper
(dim 6, mask False) is 0/1 as recorded. config.json says so with
`"action_stats": "dataset_statistics.json", "unnorm_key": "sim"`.

`--guidance auto` picks the DynamicCFG scale with the lowest held-out action error (DDIM 10 steps,
EMA weights) among --guidance-grid and records the table in config.json `training.guidance_search`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tinysim  # noqa: E402
from cache_latents import load_vae  # noqa: E402
from train_dit import LatentCache, TinyVideoVLA, eval_actions  # noqa: E402
from videovla_ref.modeldir import save_model_dir  # noqa: E402


def load_trained(dit_run: str, use_ema: bool = True) -> tuple[TinyVideoVLA, Tokenizer, dict]:
    with open(os.path.join(dit_run, "config.json")) as f:
        info = json.load(f)
    tok = Tokenizer.from_file(os.path.join(dit_run, "tokenizer.json"))
    ck = torch.load(os.path.join(dit_run, "ckpt.pt"), map_location="cpu", weights_only=False)
    model = TinyVideoVLA(tok.get_vocab_size(), info["dit"]["out_channels"])
    model.load_state_dict(ck["ema" if use_ema else "model"])
    model.eval()
    info["step"] = ck["step"]
    return model, tok, info


def export_model(out: str, model: TinyVideoVLA, tok: Tokenizer, vae, vcfg: dict, info: dict, guidance: float, *,
                 name: str = "tiny-sim", ema: bool = True, vae_psnr=None, guidance_search=None) -> None:
    """Write the model folder + dataset_statistics.json. `info` = runs/dit/config.json (+ "step")."""
    extra = {
        "num_frames": tinysim.NUM_FRAMES,
        "action_stats": "dataset_statistics.json",
        "unnorm_key": "sim",
        "training": {
            "dit_steps": info.get("step"), "windows": info.get("windows"), "ema": ema,
            "video_loss_weight": info["args"]["video_loss_weight"], "params": info.get("params"),
            "vae_val_psnr_17f": vae_psnr, "guidance_search": guidance_search or {},
            "code": "training/ (train.sh)",
        },
    }
    sampler = {"kind": "ddim", "steps": 10, "guidance_scale": guidance, "guidance_exp": 5.0, "dynamic_cfg": True}
    save_model_dir(out, name=name, image_size=tinysim.IMAGE_SIZE, dit=model.dit, vae_config=vcfg, vae=vae,
                   t5=model.t5, tokenizer=tok, sampler=sampler, default_robot_id=tinysim.ROBOT_ID, extra=extra)
    with open(os.path.join(out, "dataset_statistics.json"), "w") as f:
        json.dump({"sim": {"action": info["action_stats"]}}, f, indent=1)
    os.chmod(os.path.join(out, "dataset_statistics.json"), 0o644)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae", default="runs/vae")
    ap.add_argument("--dit", default="runs/dit")
    ap.add_argument("--val-latents", default="data/latents-val")
    ap.add_argument("--out", default="models/tiny-sim")
    ap.add_argument("--name", default="tiny-sim (VideoVLA trained on the built-in simulator)")
    ap.add_argument("--guidance", default="auto", help="DynamicCFG scale, or 'auto'")
    ap.add_argument("--guidance-grid", default="0,1,2,3,4,6")
    ap.add_argument("--eval-windows", type=int, default=128)
    ap.add_argument("--no-ema", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, tok, info = load_trained(a.dit, not a.no_ema)
    vae, vcfg = load_vae(a.vae)
    vcfg = dict(vcfg, scaling_factor=info["scaling_factor"])
    vae.scaling_factor = info["scaling_factor"]
    shift_path = os.path.join(a.dit, "latent_shift.safetensors")
    shift = load_file(shift_path)["latent_shift"] if info.get("latent_shift") else None
    vae.latent_shift = shift  # saved in vae.safetensors as "latent_shift" (C, h, w)
    search = {}
    if a.guidance == "auto":
        val = LatentCache(a.val_latents, tok, tinysim.TEXT_LEN, stats=info["action_stats"], shift=shift)
        for gs in [float(x) for x in a.guidance_grid.split(",")]:
            search[str(gs)] = eval_actions(model, val, info["scaling_factor"], n=a.eval_windows, guidance=gs)
            print(f"guidance {gs}: {search[str(gs)]}", flush=True)
        guidance = float(min(search, key=lambda k: search[k]["arm_mse"] - 0.1 * search[k]["grip_acc"]))
    else:
        guidance = float(a.guidance)
    vae_metrics = {}
    p = os.path.join(a.vae, "metrics.json")
    if os.path.exists(p):
        with open(p) as f:
            vae_metrics = json.load(f)
    export_model(a.out, model, tok, vae, vcfg, info, guidance, name=a.name, ema=not a.no_ema,
                 vae_psnr=vae_metrics.get("val_psnr_17f"), guidance_search=search)
    size = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out))
    print(f"exported {a.out}: {size / 1e6:.2f} MB, guidance {guidance}, dit step {info['step']}", flush=True)


if __name__ == "__main__":
    main()
