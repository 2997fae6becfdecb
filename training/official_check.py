#!/usr/bin/env python3
"""Check the golden fixtures against the *official* code (opt-in; needs checkouts nobody vendors here).

    VIDEOVLA_OFFICIAL_DIR=/path/to/VideoVLA   # github.com/VideoVLA-Project/VideoVLA
    SAT_DIR=/path/to/SwissArmyTransformer     # github.com/THUDM/SwissArmyTransformer (contains sat/)
    PYTHONPATH=<dir with einops, omegaconf, beartype> python training/official_check.py

Runs, on CPU in float32 with the fixtures' weights and inputs:
  * the official ``DiffusionTransformer_withact`` (SAT) against ``dit_tiny``;
  * the official ``VPSDEDPMPP2MSampler_withact`` + ``DiscreteDenoiser_withact`` + ``DynamicCFG`` +
    ``OpenAIWrapper`` around it, its ``torch.randn_like`` fed with the fixture's epsilons, against
    ``sampler_dpmpp``;
  * the official ``ContextParallelEncoder3D`` / ``ContextParallelDecoder3D`` (context parallel size 1,
    SAT -> diffusers key renaming as in diffusers' convert script; SAT's hard-coded 32 GroupNorm groups
    replaced by the tiny config's ``norm_num_groups``) against ``vae_tiny``, decoding with the chunk
    loop of ``sample_video_action.py``.
Prints one line ``OFFICIAL <name> rel err ...`` per comparison and exits non-zero past 1e-5.
Heavy training-only dependencies of the official tree (pytorch_lightning, kornia, wandb, ...) are
replaced by empty stand-in modules; none of them is on the inference path exercised here.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")


def _stub(name):
    class _M(types.ModuleType):
        def __getattr__(self, attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            import torch

            return type(attr, (torch.nn.Module,), {})

    m = _M(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None)
    m.__path__ = []
    sys.modules[name] = m
    return m


def install_stubs():
    import torch

    for name in ["pytorch_lightning", "pytorch_lightning.utilities", "lightning_utilities", "kornia",
                 "kornia.augmentation", "wandb", "decord", "imageio", "timm"]:
        try:
            __import__(name)
        except Exception:
            _stub(name)
    sys.modules["pytorch_lightning"].LightningModule = torch.nn.Module
    from transformers import T5EncoderModel, T5Tokenizer  # noqa: F401  (resolve before scipy is stubbed)

    try:
        import scipy.integrate  # noqa: F401
    except Exception:
        _stub("scipy").integrate = _stub("scipy.integrate")


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def build_official_dit(cfg):
    import dit_video_concat_withact as off

    targs = argparse.Namespace(checkpoint_activations=False, vocab_size=1, max_sequence_length=cfg["max_position_embeddings"],
                               layernorm_order="pre", skip_init=False, model_parallel_size=1, is_decoder=False)
    m = "dit_video_concat_withact."
    modules = {
        "pos_embed_config": {"target": m + "Rotary3DPositionEmbeddingMixin_withact", "params": {
            "learnable_pos_embed": True, "hidden_size_head": cfg["hidden_size"] // cfg["num_attention_heads"],
            "text_length": cfg["text_length"], "action_length": cfg["action_length"], "max_num_robots": cfg["num_robot_ids"]}},
        "patch_embed_config": {"target": m + "ImagePatchEmbeddingMixin_withact", "params": {
            "text_hidden_size": cfg["text_hidden_size"], "action_hidden_size": cfg["action_dim"]}},
        "adaln_layer_config": {"target": m + "AdaLNMixin", "params": {"qk_ln": True}},
        "final_layer_config": {"target": m + "FinalLayerMixin_withact", "params": {"output_action_dim": cfg["action_dim"]}},
    }
    assert cfg["intermediate_size"] == 4 * cfg["hidden_size"], "SAT derives the MLP width as 4*hidden"
    return off.DiffusionTransformer_withact(
        transformer_args=targs, num_frames=(cfg["latent_frames"] - 1) * 4 + 1, time_compressed_rate=4,
        latent_width=cfg["latent_width"], latent_height=cfg["latent_height"], patch_size=cfg["patch_size"],
        in_channels=cfg["in_channels"], out_channels=cfg["out_channels"], hidden_size=cfg["hidden_size"],
        num_layers=cfg["num_layers"], num_attention_heads=cfg["num_attention_heads"], elementwise_affine=True,
        time_embed_dim=cfg["time_embed_dim"], modules=modules, dtype="fp32",
    ).eval()


def check_dit(results):
    import torch
    from safetensors.torch import load_file

    fx = load_file(os.path.join(FIX, "dit_tiny.safetensors"))
    cfg = json.load(open(os.path.join(FIX, "dit_tiny.json")))["config"]
    model = build_official_dit(cfg)
    weights = {k: v for k, v in fx.items() if not k.startswith("io.")}
    official_keys = set(model.state_dict())
    extra = sorted(official_keys - set(weights))
    assert extra == ["mixins.pos_embed.freqs_cos", "mixins.pos_embed.freqs_sin"], extra
    assert not set(weights) - official_keys
    model.load_state_dict(weights, strict=False)
    with torch.no_grad():
        vid, act = model(fx["io.x"].clone(), timesteps=fx["io.timesteps"].float(), context=fx["io.text"].clone(),
                         action_input_withdenoiser=fx["io.actions"].clone(), robot_ids=fx["io.robot_ids"])
    results["dit_tiny video_v"] = rel(vid, fx["io.video_v"])
    results["dit_tiny action_v"] = rel(act, fx["io.action_v"])
    return model


def check_sampler(model, results):
    import torch
    from safetensors.torch import load_file
    from sgm.modules.diffusionmodules.denoiser import DiscreteDenoiser_withact
    from sgm.modules.diffusionmodules.sampling import VPSDEDPMPP2MSampler_withact
    from sgm.modules.diffusionmodules.wrappers import OpenAIWrapper

    fx = load_file(os.path.join(FIX, "sampler_dpmpp.safetensors"))
    meta = json.load(open(os.path.join(FIX, "sampler_dpmpp.json")))
    n = meta["steps"]
    disc = {"target": "sgm.modules.diffusionmodules.discretizer.ZeroSNRDDPMDiscretization", "params": {"shift_scale": 1.0}}
    sampler = VPSDEDPMPP2MSampler_withact(
        fixed_frames=0, num_steps=n, verbose=False, device="cpu", discretization_config=disc,
        guider_config={"target": "sgm.modules.diffusionmodules.guiders.DynamicCFG", "params": {
            "scale": meta["guidance_scale"], "exp": meta["guidance_exp"], "num_steps": meta["guidance_num_steps"]}})
    den = DiscreteDenoiser_withact(
        weighting_config={"target": "sgm.modules.diffusionmodules.denoiser_weighting.EpsWeighting"},
        scaling_config={"target": "sgm.modules.diffusionmodules.denoiser_scaling.VideoScaling"},
        num_idx=1000, discretization_config=disc, quantize_c_noise=False)
    wrapper = OpenAIWrapper(model, dtype=torch.float32)

    def denoiser(inp, sigma, c, **kw):
        return den(wrapper, inp, sigma, c, concat_images=None, **kw)

    text, img = fx["io.text"], fx["io.image_latent"]
    T = fx["io.x_init"].shape[1]
    concat = torch.cat([img, torch.zeros(1, T - 1, *img.shape[2:])], dim=1)
    cond = {"crossattn": text.clone(), "concat": concat.clone()}
    uc = {"crossattn": torch.zeros_like(text), "concat": concat.clone()}
    ev, ea = fx["io.eps_video"], fx["io.eps_action"]
    # per step: video eps, action eps of the "standard" update; from step 1 on those are discarded and
    # the "advanced" update draws again
    queue = [ev[0], ea[0]]
    for k in range(1, n - 1):
        queue += [torch.zeros_like(ev[k]), torch.zeros_like(ea[k]), ev[k], ea[k]]
    orig = torch.randn_like

    def fed(t, *a, **k):
        e = queue.pop(0)
        assert e.shape == t.shape
        return e.clone()

    torch.randn_like = fed
    try:
        with torch.no_grad():
            x, a = sampler(denoiser, fx["io.x_init"].clone(), fx["io.a_init"].clone(), cond, uc=uc, scale=None,
                           scale_emb=None, auxinfo_dict={"batch": {"actions": fx["io.a_init"], "robot_ids": fx["io.robot_ids"]}})
    finally:
        torch.randn_like = orig
    assert not queue, "the official sampler consumed fewer noise draws than expected"
    results["sampler_dpmpp video"] = rel(x, fx["io.video"])
    results["sampler_dpmpp action"] = rel(a, fx["io.action"])


# diffusers' convert_cogvideox_to_diffusers.py renaming (SAT -> diffusers), plus up.i -> up_blocks.(n-1-i)
VAE_RENAME = [("block.", "resnets."), ("down.", "down_blocks."), ("downsample", "downsamplers.0"),
              ("upsample", "upsamplers.0"), ("nin_shortcut", "conv_shortcut"),
              ("encoder.mid.block_1", "encoder.mid_block.resnets.0"), ("encoder.mid.block_2", "encoder.mid_block.resnets.1"),
              ("decoder.mid.block_1", "decoder.mid_block.resnets.0"), ("decoder.mid.block_2", "decoder.mid_block.resnets.1")]


def sat_to_diffusers_vae_key(k: str, num_levels: int) -> str:
    for a, b in VAE_RENAME:
        k = k.replace(a, b)
    if k.startswith("decoder.up."):
        s = k.split(".")
        s[1], s[2] = "up_blocks", str(num_levels - 1 - int(s[2]))
        k = ".".join(s)
    return k


def check_vae(results):
    import torch
    from safetensors.torch import load_file
    from sgm.util import initialize_context_parallel

    initialize_context_parallel(1)
    import vae_modules.cp_enc_dec as cp

    fx = load_file(os.path.join(FIX, "vae_tiny.safetensors"))
    cfg = json.load(open(os.path.join(FIX, "vae_tiny.json")))["config"]
    groups = cfg["norm_num_groups"]
    init = cp.ContextParallelGroupNorm.__init__

    def with_groups(self, *a, **k):
        k["num_groups"] = groups
        init(self, *a, **k)

    cp.ContextParallelGroupNorm.__init__ = with_groups
    boc = cfg["block_out_channels"]
    ch = boc[0]
    kw = dict(ch=ch, out_ch=3, ch_mult=[c // ch for c in boc], num_res_blocks=cfg["layers_per_block"], attn_resolutions=[],
              dropout=0.0, in_channels=3, resolution=32, z_channels=cfg["latent_channels"],
              temporal_compress_times=cfg["temporal_compression_ratio"], gather_norm=True)
    enc = cp.ContextParallelEncoder3D(double_z=True, **kw).eval()
    dec = cp.ContextParallelDecoder3D(**kw).eval()
    n_fixture = len([k for k in fx if not k.startswith("io.")])
    assert len(enc.state_dict()) + len(dec.state_dict()) == n_fixture
    for prefix, m in (("encoder.", enc), ("decoder.", dec)):
        m.load_state_dict({k: fx[sat_to_diffusers_vae_key(prefix + k, len(boc))] for k in m.state_dict()}, strict=True)
    with torch.no_grad():
        mean, logvar = enc(fx["io.video"]).chunk(2, dim=1)
        image_mean = enc(fx["io.image"]).chunk(2, dim=1)[0]
        z = fx["io.z"]
        loop = (z.shape[2] - 1) // 2
        outs = []
        for i in range(loop):
            a, b = (0, 3) if i == 0 else (2 * i + 1, 2 * i + 3)
            outs.append(dec(z[:, :, a:b].contiguous(), clear_fake_cp_cache=i == loop - 1))
        decoded = torch.cat(outs, dim=2)
    results["vae_tiny posterior_mean"] = rel(mean, fx["io.posterior_mean"])
    results["vae_tiny posterior_logvar"] = rel(logvar.clamp(-30.0, 20.0), fx["io.posterior_logvar"])
    results["vae_tiny image_mean"] = rel(image_mean, fx["io.image_mean"])
    results["vae_tiny decoded"] = rel(decoded, fx["io.decoded"])


def main():
    off = os.environ.get("VIDEOVLA_OFFICIAL_DIR")
    sat = os.environ.get("SAT_DIR")
    if not off or not sat:
        sys.exit("set VIDEOVLA_OFFICIAL_DIR and SAT_DIR")
    sys.path[:0] = [off, sat]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=os.environ.get("MASTER_PORT", "29541"))
    install_stubs()
    results = {}
    model = check_dit(results)  # SAT's model-only mode initialises torch.distributed (gloo, loopback)
    check_sampler(model, results)
    check_vae(results)
    worst = 0.0
    for k, v in results.items():
        print(f"OFFICIAL {k}: rel err {v:.3e}")
        worst = max(worst, v)
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main()
