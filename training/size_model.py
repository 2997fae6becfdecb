"""Size the embedded model: write a random model folder of a candidate config and time one full
Rust predict with `videovla bench` (text, VAE encode, DDIM steps with CFG, decode of 49 frames).

    python training/size_model.py --bin target/release/videovla --vae 4,8,16,16 --latent 8 \
        --hidden 128 --layers 4 --heads 4 --mlp 512 --patch 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import torch
from transformers import T5EncoderModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tinysim  # noqa: E402
from videovla_ref.dit import VideoVLADiT  # noqa: E402
from videovla_ref.modeldir import save_model_dir, word_level_tokenizer  # noqa: E402
from videovla_ref.randinit import randomize_  # noqa: E402
from videovla_ref.vae import CogVideoXVAE  # noqa: E402


def write_random(path, vae_kw, t5_kw, dit_kw, seed=0):
    tok = word_level_tokenizer(tinysim.SIM_WORDS)
    vcfg = tinysim.vae_config(**vae_kw)
    vae = randomize_(CogVideoXVAE.from_config(vcfg), seed)
    t5 = randomize_(T5EncoderModel(tinysim.t5_config(tok.get_vocab_size(), **t5_kw)), seed + 1)
    dit = randomize_(VideoVLADiT(tinysim.dit_config(latent_channels=vcfg["latent_channels"],
                                                    text_hidden=t5_kw["d_model"], **dit_kw)), seed + 2)
    save_model_dir(path, name="sizing", image_size=tinysim.IMAGE_SIZE, dit=dit, vae_config=vcfg, vae=vae, t5=t5,
                   tokenizer=tok, default_robot_id=0,
                   sampler={"kind": "ddim", "steps": 10, "guidance_scale": 6.0, "guidance_exp": 5.0,
                            "dynamic_cfg": True}, extra={"num_frames": tinysim.NUM_FRAMES})
    n = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    return n


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="/root/.cache/videovla/target/release/videovla")
    ap.add_argument("--vae", default="4,8,16,16")
    ap.add_argument("--latent", type=int, default=8)
    ap.add_argument("--lpb", type=int, default=1)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp", type=int, default=512)
    ap.add_argument("--temb", type=int, default=128)
    ap.add_argument("--t5", type=int, default=64)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--out", default=None)
    ap.add_argument("--extra", default="", help="extra args for videovla bench")
    a = ap.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="size-")
    path = os.path.join(out, "model")
    n = write_random(path, dict(block_out_channels=tuple(int(c) for c in a.vae.split(",")), latent_channels=a.latent,
                                layers_per_block=a.lpb, groups=a.groups),
                     dict(d_model=a.t5, num_layers=2, num_heads=4, d_ff=2 * a.t5),
                     dict(hidden=a.hidden, layers=a.layers, heads=a.heads, time_embed_dim=a.temb, mlp=a.mlp,
                          patch=a.patch))
    print(f"model folder {path}: {n / 1e6:.2f} MB", flush=True)
    cmd = [a.bin, "bench", "--model", path, "--sampler", "ddim", "--steps", "10", "--cfg", "6"] + a.extra.split()
    subprocess.run(cmd, check=True)
