"""The inverse of export.py: a model folder (`models/tiny-sim`) back into the run folders the
training scripts read, so a run can continue from the committed weights on a fresh clone (the
training checkpoints under runs/ are git-ignored).

    python training/import_model.py --model models/tiny-sim --vae-out runs/vae --dit-out runs/dit-shipped
    python training/cache_latents.py --vae runs/vae ...
    python training/train_dit.py --init runs/dit-shipped/ckpt.pt ...   # keeps tokenizer, shift, scale, stats

Writes (each atomically):
  VAE-OUT/config.json {"vae": cfg}, VAE-OUT/vae.pt      the VAE without its latent shift (caches hold raw posteriors)
  VAE-OUT/metrics.json                                   its held-out PSNR, when the folder records it
  DIT-OUT/ckpt.pt {"model", "ema", "step"}              both = the exported (EMA) weights, T5 + DiT
  DIT-OUT/tokenizer.json, latent_shift.safetensors, config.json (scaling_factor, action_stats, dit, ...)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import save_ckpt  # noqa: E402
from train_dit import TinyVideoVLA  # noqa: E402
from videovla_ref.modeldir import FILES  # noqa: E402


def _write_json(path: str, obj: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


def import_model(model_dir: str, vae_out: str, dit_out: str) -> dict:
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    files = cfg.get("files", FILES)
    with open(os.path.join(model_dir, "dataset_statistics.json")) as f:
        stats = json.load(f)[cfg.get("unnorm_key", "sim")]["action"]
    tok = Tokenizer.from_file(os.path.join(model_dir, files["tokenizer"]))

    vae_state = {}
    for name in files["vae"]:
        vae_state.update(load_file(os.path.join(model_dir, name)))
    shift = vae_state.pop("latent_shift", None)
    os.makedirs(vae_out, exist_ok=True)
    torch.save(vae_state, os.path.join(vae_out, "vae.pt.tmp"))
    os.replace(os.path.join(vae_out, "vae.pt.tmp"), os.path.join(vae_out, "vae.pt"))
    _write_json(os.path.join(vae_out, "config.json"), {"vae": cfg["vae"], "imported_from": os.path.abspath(model_dir)})
    training = cfg.get("training", {})
    if training.get("vae_val_psnr_17f") is not None:  # what export.py records about the VAE
        _write_json(os.path.join(vae_out, "metrics.json"), {"val_psnr_17f": training["vae_val_psnr_17f"]})

    model = TinyVideoVLA(tok.get_vocab_size(), cfg["dit"]["out_channels"])
    state = {}
    for name in files["transformer"]:
        state.update({f"dit.{k}": v for k, v in load_file(os.path.join(model_dir, name)).items()})
    for name in files["text_encoder"]:
        state.update({f"t5.{k}": v for k, v in load_file(os.path.join(model_dir, name)).items()})
    state["t5.encoder.embed_tokens.weight"] = state["t5.shared.weight"]  # tied; export drops the alias
    model.load_state_dict(state, strict=True)
    os.makedirs(dit_out, exist_ok=True)
    save_ckpt(os.path.join(dit_out, "ckpt.pt"), {"model": model.state_dict(), "ema": model.state_dict(),
                                                  "step": training.get("dit_steps", 0),
                                                  "vocab": tok.get_vocab_size()})
    tok.save(os.path.join(dit_out, "tokenizer.json"))
    if shift is not None:
        save_file({"latent_shift": shift.contiguous()}, os.path.join(dit_out, "latent_shift.safetensors.tmp"))
        os.replace(os.path.join(dit_out, "latent_shift.safetensors.tmp"),
                   os.path.join(dit_out, "latent_shift.safetensors"))
    info = {"args": {"video_loss_weight": training.get("video_loss_weight", 1.0)},
            "scaling_factor": cfg["vae"]["scaling_factor"], "latent_shift": shift is not None,
            "vae_config": cfg["vae"], "action_stats": stats, "dit": cfg["dit"],
            "windows": training.get("windows"), "params": training.get("params"),
            "imported_from": os.path.abspath(model_dir)}
    _write_json(os.path.join(dit_out, "config.json"), info)
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/tiny-sim")
    ap.add_argument("--vae-out", default="runs/vae")
    ap.add_argument("--dit-out", default="runs/dit-shipped")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.model, "config.json")):
        sys.exit(f"--model {a.model}: no config.json there; give a model folder such as models/tiny-sim")
    info = import_model(a.model, a.vae_out, a.dit_out)
    print(f"imported {a.model}: VAE -> {a.vae_out}, T5 + DiT -> {a.dit_out} (scale {info['scaling_factor']}, "
          f"shift {info['latent_shift']})", flush=True)


if __name__ == "__main__":
    main()
