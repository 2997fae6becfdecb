"""Witness (b): one reference DiT layer vs diffusers' CogVideoXBlock with the SAT weights mapped
the way diffusers' convert_cogvideox_to_diffusers.py maps them.

Action tokens are SAT-only; they use the vision adaLN branch and no RoPE, so they are appended to
diffusers' "video" stream and given identity rotary rows (cos 1, sin 0): the comparison covers
text + video + action tokens exactly."""

import torch
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock

from gen_fixtures import DIT_TINY, build_dit_tiny


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@torch.no_grad()
def test_layer_vs_cogvideox_block():
    cfg = DIT_TINY
    model = build_dit_tiny()
    D, hd = cfg.hidden_size, cfg.head_dim
    g = torch.Generator().manual_seed(5)
    B, L, A = 2, cfg.text_length, cfg.action_length
    nv = cfg.num_video_tokens
    h = torch.randn(B, L + nv + A, D, generator=g)
    emb = torch.randn(B, cfg.time_embed_dim, generator=g)
    pos = model.mixins["pos_embed"]
    cos = torch.cat([pos.freqs_cos, torch.ones(A, hd)])
    sin = torch.cat([pos.freqs_sin, torch.zeros(A, hd)])
    worst = 0.0
    for i in range(cfg.num_layers):
        ref = model.layer_forward(i, h, emb, L, nv)

        blk = CogVideoXBlock(
            dim=D, num_attention_heads=cfg.num_attention_heads, attention_head_dim=hd,
            time_embed_dim=cfg.time_embed_dim, activation_fn="gelu-approximate", attention_bias=True,
            qk_norm=True, norm_elementwise_affine=True, norm_eps=cfg.layernorm_eps,
            ff_inner_dim=cfg.intermediate_size, ff_bias=True, attention_out_bias=True,
        ).eval()
        sd = model.state_dict()
        p = f"transformer.layers.{i}."
        W = sd[f"mixins.adaln_layer.adaLN_modulations.{i}.1.weight"]
        Bb = sd[f"mixins.adaln_layer.adaLN_modulations.{i}.1.bias"]
        ch = lambda t, a, b: t[a * D:b * D]
        q, k, v = sd[p + "attention.query_key_value.weight"].chunk(3, dim=0)
        qb, kb, vb = sd[p + "attention.query_key_value.bias"].chunk(3, dim=0)
        new = {
            "norm1.linear.weight": torch.cat([ch(W, 0, 3), ch(W, 6, 9)]),
            "norm1.linear.bias": torch.cat([ch(Bb, 0, 3), ch(Bb, 6, 9)]),
            "norm1.norm.weight": sd[p + "input_layernorm.weight"],
            "norm1.norm.bias": sd[p + "input_layernorm.bias"],
            "norm2.linear.weight": torch.cat([ch(W, 3, 6), ch(W, 9, 12)]),
            "norm2.linear.bias": torch.cat([ch(Bb, 3, 6), ch(Bb, 9, 12)]),
            "norm2.norm.weight": sd[p + "post_attention_layernorm.weight"],
            "norm2.norm.bias": sd[p + "post_attention_layernorm.bias"],
            "attn1.to_q.weight": q, "attn1.to_q.bias": qb,
            "attn1.to_k.weight": k, "attn1.to_k.bias": kb,
            "attn1.to_v.weight": v, "attn1.to_v.bias": vb,
            "attn1.norm_q.weight": sd[f"mixins.adaln_layer.query_layernorm_list.{i}.weight"],
            "attn1.norm_q.bias": sd[f"mixins.adaln_layer.query_layernorm_list.{i}.bias"],
            "attn1.norm_k.weight": sd[f"mixins.adaln_layer.key_layernorm_list.{i}.weight"],
            "attn1.norm_k.bias": sd[f"mixins.adaln_layer.key_layernorm_list.{i}.bias"],
            "attn1.to_out.0.weight": sd[p + "attention.dense.weight"],
            "attn1.to_out.0.bias": sd[p + "attention.dense.bias"],
            "ff.net.0.proj.weight": sd[p + "mlp.dense_h_to_4h.weight"],
            "ff.net.0.proj.bias": sd[p + "mlp.dense_h_to_4h.bias"],
            "ff.net.2.weight": sd[p + "mlp.dense_4h_to_h.weight"],
            "ff.net.2.bias": sd[p + "mlp.dense_4h_to_h.bias"],
        }
        missing, unexpected = blk.load_state_dict(new, strict=True), None
        hs, enc = blk(hidden_states=h[:, L:].clone(), encoder_hidden_states=h[:, :L].clone(), temb=emb,
                      image_rotary_emb=(cos, sin))
        out = torch.cat([enc, hs], dim=1)
        e = rel(out, ref)
        e_act = rel(out[:, -A:], ref[:, -A:])
        print(f"layer {i}: rel err full {e:.3e}, action tokens {e_act:.3e}")
        worst = max(worst, e, e_act)
        h = ref
    print(f"DiT layer vs diffusers CogVideoXBlock: max rel err {worst:.3e}")
    assert worst < 1e-5


def test_rope_tables_vs_diffusers():
    """SAT's integer-grid 3D RoPE == diffusers' get_3d_rotary_pos_embed with crop (0,0)-(h,w) and
    grid (h,w) (which then also uses integer positions)."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    cfg = DIT_TINY
    model = build_dit_tiny()
    pos = model.mixins["pos_embed"]
    gh, gw = cfg.grid_h, cfg.grid_w
    cos, sin = get_3d_rotary_pos_embed(
        embed_dim=cfg.head_dim, crops_coords=((0, 0), (gh, gw)), grid_size=(gh, gw),
        temporal_size=cfg.latent_frames, theta=int(cfg.rope_theta), use_real=True,
    )
    e = max(rel(pos.freqs_cos, cos.float()), rel(pos.freqs_sin, sin.float()))
    print(f"RoPE tables vs diffusers get_3d_rotary_pos_embed: rel err {e:.3e}")
    assert e < 1e-6
