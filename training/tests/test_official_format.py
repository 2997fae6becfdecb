"""The official-format writer (`training/official_format.py`) produces the released layouts."""

import os
import subprocess
import sys

import torch

from official_check import sat_to_diffusers_vae_key
from official_format import diffusers_to_sat_vae_key
from videovla_ref.dit import DitConfig, official_state_dict_keys
from videovla_ref.vae import CogVideoXVAE

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(os.path.dirname(HERE), "tests", "fixtures")


def run(*args):
    subprocess.run([sys.executable, os.path.join(HERE, "official_format.py"), *args], check=True, capture_output=True)


def test_dit_file_has_the_sat_keys_in_bf16(tmp_path):
    run("dit", "--weights", os.path.join(FIX, "dit_tiny"), "--out", str(tmp_path))
    obj = torch.load(tmp_path / "dit.pt", weights_only=True)
    assert set(obj) == {"module", "iteration"}
    sd = obj["module"]
    import json
    cfg = DitConfig.from_dict(json.load(open(os.path.join(FIX, "dit_tiny.json")))["config"])
    want = {"model.diffusion_model." + k for k in official_state_dict_keys(cfg, include_rope_buffers=True)}
    print(f"{len(sd)} keys")
    assert set(sd) == want
    assert all(v.dtype == torch.bfloat16 for v in sd.values())


def test_sat_vae_names_invert_the_diffusers_table_for_the_released_vae():
    with torch.device("meta"):
        vae = CogVideoXVAE.from_config({})
    keys = list(vae.state_dict())
    sat = [diffusers_to_sat_vae_key(k, 4) for k in keys]
    assert len(set(sat)) == len(keys)
    assert all(sat_to_diffusers_vae_key(s, 4) == k for s, k in zip(sat, keys))
    assert "decoder.up.0.block.3.conv2.conv.weight" in sat and "encoder.mid.block_1.norm1.weight" in sat
    print(f"{len(keys)} released VAE keys round-trip")
