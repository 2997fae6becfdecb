"""A random tiny model folder (the format the Rust program loads) and an end-to-end prediction on
it with recorded noise: `tests/fixtures/tiny_model/` + `tests/fixtures/pipeline_tiny.*`.

Called by `gen_fixtures.py` (fixture name `pipeline_tiny`); also usable alone:
    python training/pipeline_fixture.py --out tests/fixtures
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import T5Config, T5EncoderModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from videovla_ref.dit import DitConfig, VideoVLADiT  # noqa: E402
from videovla_ref.modeldir import load_model_dir, save_model_dir, word_level_tokenizer  # noqa: E402
from videovla_ref.pipeline import predict  # noqa: E402
from videovla_ref.randinit import randomize_  # noqa: E402
from videovla_ref.sampling import Guidance  # noqa: E402
from videovla_ref.vae import CogVideoXVAE  # noqa: E402

WORDS = ("pick up put the a on next to red green blue yellow purple orange white black cube ball "
         "cylinder cone block lift grasp place stack it").split()

TINY_VAE = {
    "_class_name": "AutoencoderKLCogVideoX",
    "in_channels": 3, "out_channels": 3,
    "down_block_types": ["CogVideoXDownBlock3D"] * 4,
    "up_block_types": ["CogVideoXUpBlock3D"] * 4,
    "block_out_channels": [8, 16, 16, 16], "latent_channels": 4, "layers_per_block": 1,
    "act_fn": "silu", "norm_eps": 1e-6, "norm_num_groups": 4, "temporal_compression_ratio": 4,
    "sample_height": 64, "sample_width": 64, "scaling_factor": 0.7, "shift_factor": None,
    "latents_mean": None, "latents_std": None, "force_upcast": True,
    "use_quant_conv": False, "use_post_quant_conv": False, "invert_scale_latents": False,
}


def tiny_t5_config(vocab_size: int) -> T5Config:
    return T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                    num_heads=4, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                    dropout_rate=0.0, layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu",
                    tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                    is_encoder_decoder=True, use_cache=False)


TINY_DIT = DitConfig.from_dict({
    "num_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "time_embed_dim": 32,
    "in_channels": 8, "out_channels": 4, "patch_size": 2, "text_hidden_size": 32, "text_length": 16,
    "latent_frames": 3, "latent_height": 8, "latent_width": 8, "action_length": 6, "action_dim": 7,
    "num_robot_ids": 10, "intermediate_size": 128, "layernorm_eps": 1e-5, "qk_layernorm_eps": 1e-6,
    "final_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 64,
})


def write_random_tiny_model(path: str, seed: int = 7) -> None:
    torch.manual_seed(seed)
    tok = word_level_tokenizer(WORDS)
    t5 = T5EncoderModel(tiny_t5_config(tok.get_vocab_size()))
    randomize_(t5, seed=seed + 1)
    dit = VideoVLADiT(TINY_DIT)
    randomize_(dit, seed=seed + 2)
    vae = CogVideoXVAE.from_config(TINY_VAE)
    randomize_(vae, seed=seed + 3)
    save_model_dir(path, name="random-tiny (test fixture)", image_size=64, dit=dit, vae_config=TINY_VAE,
                   vae=vae, t5=t5, tokenizer=tok, default_robot_id=3,
                   sampler={"kind": "ddim", "steps": 4, "guidance_scale": 6.0, "guidance_exp": 5.0,
                            "dynamic_cfg": True})


def fixture_pipeline_tiny(out: str) -> None:
    model_dir = os.path.join(out, "tiny_model")
    write_random_tiny_model(model_dir)
    m = load_model_dir(model_dir)
    g = torch.Generator().manual_seed(99)
    image = torch.randint(0, 256, (45, 70, 3), generator=g, dtype=torch.uint8)
    instruction = "put the red cube on the blue ball"
    cfg = m.config["dit"]
    C, T, h = cfg["out_channels"], cfg["latent_frames"], cfg["latent_height"]
    steps = 4
    tensors = {"io.image_u8": image}
    meta = {"instruction": instruction, "steps": steps, "guidance_scale": 6.0, "guidance_exp": 5.0,
            "robot_id": 3, "model": "tiny_model"}
    for method in ("dpmpp", "ddim"):
        eps_image = torch.randn(1, C, 1, h, h, generator=g)
        x_init = torch.randn(1, T, C, h, h, generator=g)
        a_init = torch.randn(1, 6, 7, generator=g)
        eps_v = [torch.randn(1, T, C, h, h, generator=g) for _ in range(steps - 1)]
        eps_a = [torch.randn(1, 6, 7, generator=g) for _ in range(steps - 1)]
        r = predict(m, image.numpy(), instruction, method=method, steps=steps,
                    guidance=Guidance(scale=6.0, exp=5), robot_id=3, eps_image=eps_image,
                    x_init=x_init, a_init=a_init, eps_video=eps_v, eps_action=eps_a)
        p = f"io.{method}."
        tensors.update({p + "eps_image": eps_image, p + "x_init": x_init, p + "a_init": a_init,
                        p + "text": r["text"], p + "image_latent": r["image_latent"], p + "latents": r["latents"],
                        p + "actions": r["actions"], p + "video": r["video"]})
        if method == "dpmpp":
            tensors[p + "eps_video"] = torch.stack(eps_v)
            tensors[p + "eps_action"] = torch.stack(eps_a)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "pipeline_tiny.safetensors"))
    with open(os.path.join(out, "pipeline_tiny.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print("pipeline_tiny: video range", float(r["video"].min()), float(r["video"].max()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures")
    fixture_pipeline_tiny(ap.parse_args().out)
