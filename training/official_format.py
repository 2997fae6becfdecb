#!/usr/bin/env python3
"""Tiny checkpoints in the *official* file formats, for testing `videovla convert` without the real files.

    python training/official_format.py dit   --weights tests/fixtures/dit_tiny --out DIR [--layout module] [--dtype bf16]
    python training/official_format.py vae   --weights tests/fixtures/vae_tiny --out DIR [--dtype bf16]

``dit`` writes ``DIR/dit.pt`` the way the released ``pretrain_ckpt_light.pt`` is laid out:
``torch.save({"module": state_dict})`` (``--layout top``: the state dict itself; ``state_dict``: under
that key), every key under ``model.diffusion_model.``, tensors in ``--dtype``, including the tensors
the official module has but the port does not read (the persistent RoPE buffers ``freqs_sin`` /
``freqs_cos`` and ``transformer.position_embeddings.weight``), plus a non-tensor ``iteration`` entry.

``vae`` writes ``DIR/3d-vae.pt`` in the SAT layout of CogVideoX's ``3d-vae.pt``:
``torch.save({"state_dict": sd})`` with SAT names (``encoder.down.0.block.1.conv1.conv.weight``,
``decoder.up.3...``, ``mid.block_1``, ``nin_shortcut``), and a ``loss.*`` entry as a trained
autoencoder file has. The SAT names come from inverting diffusers' rename table; the inverse is
checked against ``official_check.sat_to_diffusers_vae_key`` (which was checked against the SAT
modules themselves).

Each also writes ``DIR/<name>_ref.safetensors``: the reference's outputs on the fixture's inputs with
the weights as stored (rounded to ``--dtype``, computed in float32), for the Rust parity tests.
``--weights`` is a fixture stem (``NAME.safetensors`` + ``NAME.json``) or a model folder
(``transformer.safetensors`` / ``vae.safetensors`` + ``config.json``; no outputs then).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from official_check import sat_to_diffusers_vae_key  # noqa: E402
from videovla_ref.dit import DitConfig, VideoVLADiT  # noqa: E402
from videovla_ref.vae import CogVideoXVAE  # noqa: E402

DIT_PREFIX = "model.diffusion_model."
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}


def load_weights(src: str, kind: str):
    """(weights, io tensors, config) from a fixture stem or a model folder."""
    if os.path.isdir(src):
        cfg = json.load(open(os.path.join(src, "config.json")))[kind]
        return load_file(os.path.join(src, {"dit": "transformer", "vae": "vae"}[kind] + ".safetensors")), {}, cfg
    st = load_file(src + ".safetensors")
    cfg = json.load(open(src + ".json"))["config"]
    return ({k: v for k, v in st.items() if not k.startswith("io.")},
            {k[3:]: v for k, v in st.items() if k.startswith("io.")}, cfg)


def diffusers_to_sat_vae_key(k: str, levels: int) -> str:
    s = k.split(".")
    if k.startswith("decoder.up_blocks."):
        s[1], s[2] = "up", str(levels - 1 - int(s[2]))
    k = ".".join(s)
    for a, b in [("encoder.mid_block.resnets.0", "encoder.mid.block_1"), ("encoder.mid_block.resnets.1", "encoder.mid.block_2"),
                 ("decoder.mid_block.resnets.0", "decoder.mid.block_1"), ("decoder.mid_block.resnets.1", "decoder.mid.block_2"),
                 ("conv_shortcut", "nin_shortcut"), ("upsamplers.0", "upsample"), ("downsamplers.0", "downsample"),
                 ("down_blocks.", "down."), ("resnets.", "block.")]:
        k = k.replace(a, b)
    return k


@torch.no_grad()
def write_dit(args):
    w, io, cfg_d = load_weights(args.weights, "dit")
    cfg = DitConfig.from_dict(cfg_d)
    dt = DTYPES[args.dtype]
    model = VideoVLADiT(cfg).eval()
    model.load_state_dict(w, strict=True)
    sd = {k: v for k, v in model.state_dict().items()}
    bufs = dict(model.named_buffers())
    for b in ("mixins.pos_embed.freqs_sin", "mixins.pos_embed.freqs_cos"):
        sd[b] = bufs[b]  # persistent in the official module, so the released file has them
    assert "transformer.position_embeddings.weight" in sd
    sd = {DIT_PREFIX + k: v.to(dt).contiguous() for k, v in sd.items()}
    if args.layout == "module":
        obj = {"module": sd, "iteration": 1}
    elif args.layout == "state_dict":
        obj = {"state_dict": sd}
    else:
        obj = sd
    os.makedirs(args.out, exist_ok=True)
    torch.save(obj, os.path.join(args.out, "dit.pt"))
    if io:
        rounded = {k: v.to(dt).float() for k, v in w.items()}
        model.load_state_dict(rounded, strict=True)
        video_v, action_v = model(io["x"], io["text"], io["actions"], io["timesteps"], io["robot_ids"])
        save_file({"video_v": video_v.contiguous(), "action_v": action_v.contiguous()}, os.path.join(args.out, "dit_ref.safetensors"))
    print(f"dit.pt: {len(sd)} tensors ({args.dtype}, layout {args.layout})")


@torch.no_grad()
def write_vae(args):
    w, io, cfg = load_weights(args.weights, "vae")
    dt = DTYPES[args.dtype]
    levels = len(cfg["block_out_channels"])
    sd = {}
    for k, v in w.items():
        sat = diffusers_to_sat_vae_key(k, levels)
        assert sat_to_diffusers_vae_key(sat, levels) == k, (k, sat)
        assert sat not in sd
        sd[sat] = v.to(dt).contiguous()
    sd["loss.logvar"] = torch.zeros((), dtype=dt)
    sd["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 3, 3, dtype=dt)
    os.makedirs(args.out, exist_ok=True)
    torch.save({"state_dict": sd, "global_step": 0}, os.path.join(args.out, "3d-vae.pt"))
    if io:
        vae = CogVideoXVAE.from_config(cfg).eval()
        vae.load_state_dict({k: v.to(dt).float() for k, v in w.items()}, strict=True)
        image_mean, _ = vae.encode(io["image"])
        decoded = vae.decode(io["z"])
        save_file({"image_mean": image_mean.contiguous(), "decoded": decoded.contiguous()}, os.path.join(args.out, "vae_ref.safetensors"))
    print(f"3d-vae.pt: {len(sd)} tensors ({args.dtype})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    for name in ("dit", "vae"):
        p = sub.add_parser(name)
        p.add_argument("--weights", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
        if name == "dit":
            p.add_argument("--layout", choices=["module", "top", "state_dict"], default="module")
    args = ap.parse_args()
    torch.manual_seed(0)
    {"dit": write_dit, "vae": write_vae}[args.what](args)


if __name__ == "__main__":
    main()
