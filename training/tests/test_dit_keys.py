"""The reference DiT's state_dict keys are the SAT checkpoint keys (prefix stripped)."""

from videovla_ref.dit import DitConfig, VideoVLADiT, official_state_dict_keys

from gen_fixtures import DIT_TINY


def test_state_dict_keys_tiny():
    model = VideoVLADiT(DIT_TINY)
    got = set(model.state_dict().keys())
    want = set(official_state_dict_keys(DIT_TINY, include_rope_buffers=False))
    print(f"{len(got)} keys; missing {sorted(want - got)}; extra {sorted(got - want)}")
    assert got == want
    # the RoPE tables exist as (non-persistent) buffers under the official names
    bufs = dict(model.named_buffers())
    assert "mixins.pos_embed.freqs_sin" in bufs and "mixins.pos_embed.freqs_cos" in bufs


def test_released_shapes():
    cfg = DitConfig.released()
    import torch

    with torch.device("meta"):
        model = VideoVLADiT(cfg)
    sd = model.state_dict()
    n = sum(v.numel() for v in sd.values())
    print(f"released DiT parameters: {n / 1e9:.4f} B")
    assert sd["mixins.pos_embed.pos_embedding"].shape == (1, 226 + 3328, 3072)
    assert sd["mixins.patch_embed.proj.weight"].shape == (3072, 32, 2, 2)
    assert sd["mixins.adaln_layer.adaLN_modulations.0.1.weight"].shape == (12 * 3072, 512)
    assert sd["mixins.final_layer.linear.weight"].shape == (64, 3072)
    assert sd["mixins.final_layer.action_linear.weight"].shape == (7, 3072)
    assert sd["mixins.pos_embed.action_robotid_embedding.weight"].shape == (100, 3072)
    assert bufs_shape(model) == (3328, 64)
    assert abs(n / 1e9 - 5.586) < 0.01


def bufs_shape(model):
    return tuple(dict(model.named_buffers())["mixins.pos_embed.freqs_sin"].shape)
