#!/usr/bin/env python3
"""Write the golden fixtures of training/FIXTURES.md.

    python training/gen_fixtures.py --out tests/fixtures [--only dit_tiny,sampler_dpmpp,...]

CPU, float32, fixed seeds, a few seconds. Every fixture NAME is NAME.json + NAME.safetensors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from videovla_ref.dit import DitConfig, VideoVLADiT  # noqa: E402
from videovla_ref.randinit import randomize_  # noqa: E402
from videovla_ref import sampling  # noqa: E402
from videovla_ref.vae import CogVideoXVAE  # noqa: E402
from videovla_ref.preprocess import preprocess_image  # noqa: E402
from videovla_ref import t5 as t5ref  # noqa: E402

torch.use_deterministic_algorithms(True)

DIT_TINY = DitConfig(
    num_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    time_embed_dim=32,
    in_channels=8,
    out_channels=4,
    patch_size=2,
    text_hidden_size=32,
    text_length=8,
    latent_frames=3,
    latent_height=8,
    latent_width=8,
    action_length=6,
    action_dim=7,
    num_robot_ids=10,
    intermediate_size=256,
)

VAE_TINY = {
    "_class_name": "AutoencoderKLCogVideoX",
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["CogVideoXDownBlock3D"] * 4,
    "up_block_types": ["CogVideoXUpBlock3D"] * 4,
    "block_out_channels": [8, 16, 16, 16],
    "latent_channels": 4,
    "layers_per_block": 1,
    "act_fn": "silu",
    "norm_eps": 1e-6,
    "norm_num_groups": 4,
    "temporal_compression_ratio": 4,
    "sample_height": 32,
    "sample_width": 32,
    "scaling_factor": 0.7,
    "shift_factor": None,
    "latents_mean": None,
    "latents_std": None,
    "force_upcast": True,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "invert_scale_latents": False,
}

T5_TINY = {
    "architectures": ["T5EncoderModel"],
    "model_type": "t5",
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "dropout_rate": 0.0,
    "layer_norm_epsilon": 1e-6,
    "initializer_factor": 1.0,
    "feed_forward_proj": "gated-gelu",
    "is_gated_act": True,
    "dense_act_fn": "gelu_new",
    "tie_word_embeddings": False,
    "vocab_size": 128,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
    "is_encoder_decoder": True,
    "use_cache": False,
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def write(out: str, name: str, meta: dict, weights: dict, io: dict):
    tensors = {}
    for k, v in weights.items():
        assert not k.startswith("io."), k
        tensors[k] = v.detach().contiguous()
    for k, v in io.items():
        tensors["io." + k] = v.detach().contiguous()
    for k, v in tensors.items():
        assert v.dtype in (torch.float32, torch.int64, torch.uint8), (k, v.dtype)
    save_file(tensors, os.path.join(out, f"{name}.safetensors"))
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=False)
        f.write("\n")


def build_vae_tiny() -> CogVideoXVAE:
    vae = CogVideoXVAE.from_config(VAE_TINY)
    randomize_(vae, seed=4321, weight_gain=1.0, bias_std=0.1)
    return vae.eval()


def build_dit_tiny() -> VideoVLADiT:
    model = VideoVLADiT(DIT_TINY)
    randomize_(model, seed=1234, weight_gain=1.0, bias_std=0.1)
    return model.eval()


# --------------------------------------------------------------------------------------------


@torch.no_grad()
def fixture_dit_tiny(out: str):
    cfg = DIT_TINY
    model = build_dit_tiny()
    g = gen(11)
    B = 2
    x = randn(g, B, cfg.latent_frames, cfg.in_channels, cfg.latent_height, cfg.latent_width)
    text = randn(g, B, cfg.text_length, cfg.text_hidden_size)
    actions = randn(g, B, cfg.action_length, cfg.action_dim)
    timesteps = torch.tensor([999, 419], dtype=torch.int64)
    robot_ids = torch.tensor([7, 3], dtype=torch.int64)
    video_v, action_v = model(x, text, actions, timesteps, robot_ids)
    print(f"dit_tiny: |video_v| rms {video_v.pow(2).mean().sqrt():.3f}, |action_v| rms {action_v.pow(2).mean().sqrt():.3f}")
    write(
        out,
        "dit_tiny",
        {"config": cfg.to_dict()},
        model.state_dict(),
        dict(x=x, text=text, actions=actions, timesteps=timesteps, robot_ids=robot_ids, video_v=video_v, action_v=action_v),
    )


@torch.no_grad()
def _sampler_fixture(out: str, name: str, method: str, steps: int, seed: int):
    cfg = DIT_TINY
    model = build_dit_tiny()
    g = gen(seed)
    C = cfg.out_channels
    T, H, W = cfg.latent_frames, cfg.latent_height, cfg.latent_width
    text = randn(g, 1, cfg.text_length, cfg.text_hidden_size)
    image_latent = randn(g, 1, 1, C, H, W) * 0.7
    x_init = randn(g, 1, T, C, H, W)
    a_init = randn(g, 1, cfg.action_length, cfg.action_dim)
    robot_ids = torch.tensor([7], dtype=torch.int64)
    guidance = sampling.Guidance(scale=6.0, exp=5)
    io = dict(text=text, image_latent=image_latent, x_init=x_init, a_init=a_init, robot_ids=robot_ids)
    eps_v = eps_a = None
    if method == "dpmpp":
        K = steps - 1
        eps_v = randn(g, K, 1, T, C, H, W)
        eps_a = randn(g, K, 1, cfg.action_length, cfg.action_dim)
        io.update(eps_video=eps_v, eps_action=eps_a)
    res = sampling.sample(model, text, image_latent, x_init, a_init, robot_ids, steps, method, eps_v, eps_a, guidance)
    io.update(
        x0_video=torch.stack(res.x0_video),
        x0_action=torch.stack(res.x0_action),
        video=res.video,
        action=res.action,
    )
    print(f"{name}: |video| rms {res.video.pow(2).mean().sqrt():.3f}, |action| rms {res.action.pow(2).mean().sqrt():.3f}")
    meta = {
        "config": cfg.to_dict(),
        "weights": "dit_tiny",
        "steps": steps,
        "guidance_scale": guidance.scale,
        "guidance_exp": guidance.exp,
        "guidance_num_steps": steps,
        "scale_factor": 0.7,
        # informative (derivable): DDPM index per step, s per step (+ final 1.0), CFG weight per step
        "timesteps": res.timesteps,
        "alphas_cumprod_sqrt": [float(v) for v in res.s_seq.tolist()],
        "cfg_weights": res.weights,
    }
    write(out, name, meta, {}, io)


def fixture_sampler_dpmpp(out: str):
    _sampler_fixture(out, "sampler_dpmpp", "dpmpp", steps=5, seed=21)


def fixture_sampler_ddim(out: str):
    _sampler_fixture(out, "sampler_ddim", "ddim", steps=4, seed=31)


@torch.no_grad()
def fixture_vae_tiny(out: str):
    vae = build_vae_tiny()
    g = gen(41)
    video = torch.rand(1, 3, 17, 32, 32, generator=g) * 2 - 1
    image = torch.rand(1, 3, 1, 32, 32, generator=g) * 2 - 1
    mean, logvar = vae.encode(video)
    image_mean, _ = vae.encode(image)
    z = randn(g, 1, VAE_TINY["latent_channels"], 5, 4, 4)
    decoded = vae.decode(z)
    print(f"vae_tiny: |mean| rms {mean.pow(2).mean().sqrt():.3f}, logvar range [{logvar.min():.2f}, {logvar.max():.2f}], "
          f"|decoded| rms {decoded.pow(2).mean().sqrt():.3f}")
    meta = {
        "config": VAE_TINY,
        "decode_chunks": vae.decode_chunks(z.shape[2]),
        "encode": "whole clip at once (SAT), logvar clamped to [-30, 20]",
    }
    write(out, "vae_tiny", meta, vae.state_dict(),
          dict(video=video, posterior_mean=mean, posterior_logvar=logvar, image=image, image_mean=image_mean,
               z=z, decoded=decoded))


def fixture_preprocess(out: str):
    g = gen(51)
    size = 32
    wide = torch.randint(0, 256, (45, 61, 3), generator=g, dtype=torch.int64).to(torch.uint8)
    tall = torch.randint(0, 256, (50, 37, 3), generator=g, dtype=torch.int64).to(torch.uint8)
    pixels = preprocess_image(wide.numpy(), size)
    pixels_tall = preprocess_image(tall.numpy(), size)
    print(f"preprocess: range [{pixels.min():.3f}, {pixels.max():.3f}]")
    meta = {
        "size": size,
        "interpolation": "bicubic, antialias=True, align_corners=False, float32, no clamp",
        "resize_rule": "W/H > 1 -> [S, int(W*S/H)] else [int(H*S/W), S]; crop top=(h-S)//2, left=(w-S)//2",
    }
    write(out, "preprocess", meta, {},
          dict(image_u8=wide, pixels=pixels, image_u8_tall=tall, pixels_tall=pixels_tall))


def build_t5_tiny():
    torch.manual_seed(61)  # transformers' own init (std per T5 conventions)
    model = t5ref.build_t5_encoder(T5_TINY)
    g = gen(62)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_norm.weight"):  # init is all ones: perturb so the weight matters
                p.copy_(1.0 + 0.1 * randn(g, *p.shape))
    return model


@torch.no_grad()
def fixture_t5_tiny(out: str):
    model = build_t5_tiny()
    g = gen(63)
    L = 16
    ids = torch.zeros(2, L, dtype=torch.int64)  # pad id 0
    ids[0, :9] = torch.randint(2, T5_TINY["vocab_size"], (9,), generator=g)
    ids[0, 9] = 1  # EOS, then padding
    ids[1, : L - 1] = torch.randint(2, T5_TINY["vocab_size"], (L - 1,), generator=g)
    ids[1, L - 1] = 1  # truncated text: EOS last
    hidden = t5ref.encode(model, ids)
    print(f"t5_tiny: |hidden| rms {hidden.pow(2).mean().sqrt():.3f}")
    sd = {k: v for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}  # tied to shared.weight
    write(out, "t5_tiny", {"config": T5_TINY, "attention_mask": None}, sd, dict(input_ids=ids, hidden=hidden))


FIXTURES = {
    "dit_tiny": fixture_dit_tiny,
    "sampler_dpmpp": fixture_sampler_dpmpp,
    "sampler_ddim": fixture_sampler_ddim,
    "vae_tiny": fixture_vae_tiny,
    "preprocess": fixture_preprocess,
    "t5_tiny": fixture_t5_tiny,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--only", default="", help="comma-separated fixture names")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    names = [n for n in args.only.split(",") if n] or list(FIXTURES)
    for n in names:
        FIXTURES[n](args.out)


if __name__ == "__main__":
    main()
