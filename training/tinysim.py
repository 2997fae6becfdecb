"""The embedded tiny VideoVLA (`models/tiny-sim`): its configs and the simulator vocabulary.

One place for the sizes the training scripts, the export and the sizing benchmark share.
Sizes were chosen with `training/size_model.py` (Rust `videovla bench` of random folders, see
training/README.md "Embedded model").
"""

from __future__ import annotations

import os
import sys

from transformers import T5Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from videovla_ref.dit import DitConfig  # noqa: E402

IMAGE_SIZE = 64
NUM_FRAMES = 49          # 13 latent frames
LATENT_FRAMES = 13
ACTION_LEN = 6
ACTION_DIM = 7
TEXT_LEN = 16
ROBOT_ID = 0

# Every word the simulator's instruction templates can produce (src/sim/tasks.rs PHRASES_*,
# world.rs Color::name / Shape::nouns), plus a few spare words; unknown words map to <unk>.
SIM_WORDS = sorted(set("""
pick up the lift grab and it raise put on stack top of place onto set next to beside move near down by
red green blue yellow purple orange cyan white black gray grey pink brown
cube block bar brick cylinder can ball sphere cone
a an object
""".split()))


def vae_config(block_out_channels=(4, 8, 16, 16), latent_channels=8, layers_per_block=1, groups=4) -> dict:
    return {
        "_class_name": "AutoencoderKLCogVideoX",
        "in_channels": 3, "out_channels": 3,
        "down_block_types": ["CogVideoXDownBlock3D"] * 4,
        "up_block_types": ["CogVideoXUpBlock3D"] * 4,
        "block_out_channels": list(block_out_channels), "latent_channels": latent_channels,
        "layers_per_block": layers_per_block,
        "act_fn": "silu", "norm_eps": 1e-6, "norm_num_groups": groups, "temporal_compression_ratio": 4,
        "sample_height": IMAGE_SIZE, "sample_width": IMAGE_SIZE, "scaling_factor": 0.7, "shift_factor": None,
        "latents_mean": None, "latents_std": None, "force_upcast": True,
        "use_quant_conv": False, "use_post_quant_conv": False, "invert_scale_latents": False,
    }


def t5_config(vocab_size: int, d_model=64, num_layers=2, num_heads=4, d_ff=128) -> T5Config:
    return T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=d_model // num_heads, d_ff=d_ff,
                    num_layers=num_layers, num_decoder_layers=num_layers, num_heads=num_heads,
                    relative_attention_num_buckets=32, relative_attention_max_distance=128,
                    dropout_rate=0.0, layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu",
                    tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                    is_encoder_decoder=True, use_cache=False)


def dit_config(latent_channels=8, hidden=128, layers=4, heads=4, time_embed_dim=128, mlp=512,
               text_hidden=64, patch=2) -> DitConfig:
    lat = IMAGE_SIZE // 8
    return DitConfig.from_dict({
        "num_layers": layers, "hidden_size": hidden, "num_attention_heads": heads,
        "time_embed_dim": time_embed_dim, "in_channels": 2 * latent_channels, "out_channels": latent_channels,
        "patch_size": patch, "text_hidden_size": text_hidden, "text_length": TEXT_LEN,
        "latent_frames": LATENT_FRAMES, "latent_height": lat, "latent_width": lat,
        "action_length": ACTION_LEN, "action_dim": ACTION_DIM, "num_robot_ids": 1,
        "intermediate_size": mlp, "layernorm_eps": 1e-5, "qk_layernorm_eps": 1e-6,
        "final_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 64,
    })


# The shipped configuration (chosen by size_model.py; see README "Embedded model").
PRESET = {
    "vae": dict(block_out_channels=(4, 8, 16, 16), latent_channels=16, layers_per_block=1, groups=4),
    "t5": dict(d_model=64, num_layers=2, num_heads=4, d_ff=128),
    "dit": dict(hidden=128, layers=4, heads=4, time_embed_dim=128, mlp=512, patch=2),
}
