"""PyTorch reference of the VideoVLA diffusion transformer (``DiffusionTransformer_withact``).

Written from the official code (VideoVLA-Project/VideoVLA ``dit_video_concat_withact.py`` on top of
SwissArmyTransformer's ``BaseTransformer``), not copied. The module tree reproduces the SAT parameter
names, so ``state_dict()`` keys equal the released checkpoint keys with ``model.diffusion_model.``
stripped (see ``official_state_dict_keys``), except that the RoPE tables ``mixins.pos_embed.freqs_sin``
/ ``freqs_cos`` are registered as *non-persistent* buffers here (the official code registers them as
persistent buffers, so they are in the released file; they are pure functions of the config and are
recomputed on load).

Token order is ``[text | video | action]``. Precision: everything here runs in the dtype of the
parameters (float32 for the fixtures). The released pipeline calls ``model.bfloat16()`` and casts the
DiT input, the actions and the sinusoidal time embedding to bf16 (``DiffusionTransformer_withact.forward``),
so the RoPE tables, the LayerNorms and every matmul run in bf16 there.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DitConfig:
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    time_embed_dim: int
    in_channels: int
    out_channels: int
    patch_size: int
    text_hidden_size: int
    text_length: int
    latent_frames: int
    latent_height: int
    latent_width: int
    action_length: int
    action_dim: int
    num_robot_ids: int
    intermediate_size: int
    layernorm_eps: float = 1e-5
    qk_layernorm_eps: float = 1e-6
    final_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 64

    @classmethod
    def released(cls) -> "DitConfig":
        return cls(42, 3072, 48, 512, 32, 16, 2, 4096, 226, 13, 32, 32, 6, 7, 100, 12288)

    @classmethod
    def from_dict(cls, d: dict) -> "DitConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_json(cls, path: str) -> "DitConfig":
        with open(path) as f:
            d = json.load(f)
        return cls.from_dict(d.get("config", d))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def grid_h(self) -> int:
        return self.latent_height // self.patch_size

    @property
    def grid_w(self) -> int:
        return self.latent_width // self.patch_size

    @property
    def num_video_tokens(self) -> int:
        return self.latent_frames * self.grid_h * self.grid_w


# ----------------------------------------------------------------------------------------------
# helpers


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """sgm ``timestep_embedding``: ``[cos | sin]``, freqs = exp(-ln(max_period) * i / half), float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = timesteps[:, None].float() * freqs[None].to(timesteps.device)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def rope_tables(cfg: DitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """SAT ``Rotary3DPositionEmbeddingMixin_withact`` tables, shape (T*h*w, head_dim).

    Per-axis sizes dim_t = head/4, dim_h = dim_w = head/8*3; freqs = 1/theta^(arange(0,d,2)/d) in f32;
    positions are the integer grid arange(T), arange(h), arange(w); each frequency is repeated
    interleaved ((n r), r=2) and the axes are concatenated [t | h | w]; rows are (t, h, w) row-major.
    """
    hd = cfg.head_dim
    dim_t, dim_h, dim_w = hd // 4, hd // 8 * 3, hd // 8 * 3
    theta = cfg.rope_theta

    def axis(d: int, n: int) -> torch.Tensor:
        freqs = 1.0 / (theta ** (torch.arange(0, d, 2)[: d // 2].float() / d))
        pos = torch.arange(n, dtype=torch.float32)
        f = pos[:, None] * freqs[None, :]
        return f.repeat_interleave(2, dim=-1)  # (n, d): f0 f0 f1 f1 ...

    T, H, W = cfg.latent_frames, cfg.grid_h, cfg.grid_w
    ft, fh, fw = axis(dim_t, T), axis(dim_h, H), axis(dim_w, W)
    freqs = torch.cat(
        [
            ft[:, None, None, :].expand(T, H, W, dim_t),
            fh[None, :, None, :].expand(T, H, W, dim_h),
            fw[None, None, :, :].expand(T, H, W, dim_w),
        ],
        dim=-1,
    ).reshape(T * H * W, dim_t + dim_h + dim_w)
    return freqs.sin(), freqs.cos()


def rotate_half_interleaved(x: torch.Tensor) -> torch.Tensor:
    """Per consecutive pair (x1, x2) -> (-x2, x1)."""
    x = x.unflatten(-1, (-1, 2))
    x1, x2 = x.unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def apply_rope(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    n = x.shape[2]
    return x * cos[:n] + rotate_half_interleaved(x) * sin[:n]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


# ----------------------------------------------------------------------------------------------
# modules; attribute names follow SAT exactly


class _PosEmbed(nn.Module):  # mixins.pos_embed
    def __init__(self, cfg: DitConfig):
        super().__init__()
        d = cfg.hidden_size
        self.pos_embedding = nn.Parameter(torch.zeros(1, cfg.text_length + cfg.num_video_tokens, d))
        self.action_pos_embedding = nn.Parameter(torch.zeros(1, cfg.action_length, d))
        self.action_robotid_embedding = nn.Embedding(cfg.num_robot_ids, d)
        sin, cos = rope_tables(cfg)
        # official: persistent buffers (present in the checkpoint); recomputed here.
        self.register_buffer("freqs_sin", sin, persistent=False)
        self.register_buffer("freqs_cos", cos, persistent=False)


class _PatchEmbed(nn.Module):  # mixins.patch_embed
    def __init__(self, cfg: DitConfig):
        super().__init__()
        d, p = cfg.hidden_size, cfg.patch_size
        self.proj = nn.Conv2d(cfg.in_channels, d, kernel_size=p, stride=p, bias=True)
        self.text_proj = nn.Linear(cfg.text_hidden_size, d)
        self.action_proj = nn.Linear(cfg.action_dim, d)


class _AdaLN(nn.Module):  # mixins.adaln_layer
    def __init__(self, cfg: DitConfig):
        super().__init__()
        d, L = cfg.hidden_size, cfg.num_layers
        self.adaLN_modulations = nn.ModuleList(
            [nn.Sequential(nn.SiLU(), nn.Linear(cfg.time_embed_dim, 12 * d)) for _ in range(L)]
        )
        self.query_layernorm_list = nn.ModuleList(
            [nn.LayerNorm(cfg.head_dim, eps=cfg.qk_layernorm_eps) for _ in range(L)]
        )
        self.key_layernorm_list = nn.ModuleList(
            [nn.LayerNorm(cfg.head_dim, eps=cfg.qk_layernorm_eps) for _ in range(L)]
        )


class _FinalLayer(nn.Module):  # mixins.final_layer
    def __init__(self, cfg: DitConfig):
        super().__init__()
        d, p = cfg.hidden_size, cfg.patch_size
        self.norm_final = nn.LayerNorm(d, eps=cfg.final_norm_eps)
        self.linear = nn.Linear(d, p * p * cfg.out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.time_embed_dim, 2 * d))
        self.action_norm_final = nn.LayerNorm(d, eps=cfg.final_norm_eps)
        self.action_linear = nn.Linear(d, cfg.action_dim)
        self.action_adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.time_embed_dim, 2 * d))


class _Attention(nn.Module):
    def __init__(self, cfg: DitConfig):
        super().__init__()
        d = cfg.hidden_size
        self.query_key_value = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)


class _MLP(nn.Module):
    def __init__(self, cfg: DitConfig):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.dense_4h_to_h = nn.Linear(cfg.intermediate_size, cfg.hidden_size)


class _Layer(nn.Module):  # transformer.layers.i
    def __init__(self, cfg: DitConfig):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_eps)
        self.attention = _Attention(cfg)
        self.post_attention_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_eps)
        self.mlp = _MLP(cfg)


class _Transformer(nn.Module):  # transformer
    def __init__(self, cfg: DitConfig):
        super().__init__()
        self.layers = nn.ModuleList([_Layer(cfg) for _ in range(cfg.num_layers)])
        self.final_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_eps)
        # SAT's learned absolute position table; never used by VideoVLA (the pos_embed mixin
        # overrides position_embedding_forward) but present in the checkpoint.
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)


class VideoVLADiT(nn.Module):
    def __init__(self, cfg: DitConfig):
        super().__init__()
        self.cfg = cfg
        assert cfg.hidden_size % cfg.num_attention_heads == 0
        hd = cfg.head_dim
        assert hd // 4 + 2 * (hd // 8 * 3) == hd, "head_dim must split into t/h/w RoPE parts"
        self.time_embed = nn.Sequential(
            nn.Linear(cfg.hidden_size, cfg.time_embed_dim),
            nn.SiLU(),
            nn.Linear(cfg.time_embed_dim, cfg.time_embed_dim),
        )
        self.mixins = nn.ModuleDict(
            {
                "pos_embed": _PosEmbed(cfg),
                "patch_embed": _PatchEmbed(cfg),
                "adaln_layer": _AdaLN(cfg),
                "final_layer": _FinalLayer(cfg),
            }
        )
        self.transformer = _Transformer(cfg)

    # -- pieces, exposed so witnesses can test one layer -----------------------------------

    def embed(self, x, text, actions, robot_ids):
        cfg = self.cfg
        B, T = x.shape[:2]
        pe = self.mixins["patch_embed"]
        v = pe.proj(x.reshape(B * T, *x.shape[2:]))  # (B*T, D, h, w)
        v = v.reshape(B, T, *v.shape[1:]).flatten(3).transpose(2, 3)  # (B, T, h*w, D)
        v = v.reshape(B, -1, v.shape[-1])  # (B, T*h*w, D), row-major over (t, h, w)
        txt = pe.text_proj(text)
        act = pe.action_proj(actions)
        h = torch.cat([txt, v, act], dim=1)

        pos = self.mixins["pos_embed"]
        n_tv = text.shape[1] + v.shape[1]
        tv_pos = pos.pos_embedding[:, :n_tv].expand(B, -1, -1)
        a_pos = pos.action_pos_embedding[:, : actions.shape[1]] + pos.action_robotid_embedding(robot_ids)[:, None]
        return h + torch.cat([tv_pos, a_pos], dim=1)

    def time_embedding(self, timesteps):
        return self.time_embed(timestep_embedding(timesteps, self.cfg.hidden_size))

    def layer_forward(self, i: int, h: torch.Tensor, emb: torch.Tensor, text_length: int, n_video: int):
        cfg = self.cfg
        layer = self.transformer.layers[i]
        ada = self.mixins["adaln_layer"]
        m = ada.adaLN_modulations[i](emb).chunk(12, dim=1)
        (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp,
         t_shift_msa, t_scale_msa, t_gate_msa, t_shift_mlp, t_scale_mlp, t_gate_mlp) = m

        txt, img = h[:, :text_length], h[:, text_length:]  # img = video + action

        a_in = torch.cat(
            [
                modulate(layer.input_layernorm(txt), t_shift_msa, t_scale_msa),
                modulate(layer.input_layernorm(img), shift_msa, scale_msa),
            ],
            dim=1,
        )
        attn = self._attention(i, a_in, text_length, n_video)
        img = img + gate_msa.unsqueeze(1) * attn[:, text_length:]
        txt = txt + t_gate_msa.unsqueeze(1) * attn[:, :text_length]

        m_in = torch.cat(
            [
                modulate(layer.post_attention_layernorm(txt), t_shift_mlp, t_scale_mlp),
                modulate(layer.post_attention_layernorm(img), shift_mlp, scale_mlp),
            ],
            dim=1,
        )
        mlp = layer.mlp.dense_4h_to_h(F.gelu(layer.mlp.dense_h_to_4h(m_in), approximate="tanh"))
        img = img + gate_mlp.unsqueeze(1) * mlp[:, text_length:]
        txt = txt + t_gate_mlp.unsqueeze(1) * mlp[:, :text_length]
        return torch.cat([txt, img], dim=1)

    def _attention(self, i, x, text_length, n_video):
        cfg = self.cfg
        layer = self.transformer.layers[i]
        ada = self.mixins["adaln_layer"]
        pos = self.mixins["pos_embed"]
        B, S, D = x.shape
        nh, hd = cfg.num_attention_heads, cfg.head_dim
        qkv = layer.attention.query_key_value(x)
        q, k, v = qkv.split(D, dim=-1)  # contiguous q | k | v (SAT stride=3 split along the last dim)
        q, k, v = (t.view(B, S, nh, hd).transpose(1, 2) for t in (q, k, v))
        # adaLN mixin's attention_fn (qk LayerNorm) wraps the rotary mixin's: LN first, then RoPE.
        q = ada.query_layernorm_list[i](q)
        k = ada.key_layernorm_list[i](k)
        lo, hi = text_length, text_length + n_video
        q = torch.cat([q[:, :, :lo], apply_rope(q[:, :, lo:hi], pos.freqs_sin, pos.freqs_cos), q[:, :, hi:]], dim=2)
        k = torch.cat([k[:, :, :lo], apply_rope(k[:, :, lo:hi], pos.freqs_sin, pos.freqs_cos), k[:, :, hi:]], dim=2)
        o = F.scaled_dot_product_attention(q, k, v)  # full attention, scale 1/sqrt(head_dim)
        o = o.transpose(1, 2).reshape(B, S, D)
        return layer.attention.dense(o)

    def final(self, h, emb, text_length, n_action, T):
        cfg = self.cfg
        fl = self.mixins["final_layer"]
        h = self.transformer.final_layernorm(h)
        vid = h[:, text_length:-n_action]
        shift, scale = fl.adaLN_modulation(emb).chunk(2, dim=1)
        vid = fl.linear(modulate(fl.norm_final(vid), shift, scale))
        B = vid.shape[0]
        p, c, gh, gw = cfg.patch_size, cfg.out_channels, cfg.grid_h, cfg.grid_w
        # b (t h w) (c p q) -> b t c (h p) (w q)
        vid = vid.reshape(B, T, gh, gw, c, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(B, T, c, gh * p, gw * p)

        act = h[:, -n_action:]
        a_shift, a_scale = fl.action_adaLN_modulation(emb).chunk(2, dim=1)
        act = fl.action_linear(modulate(fl.action_norm_final(act), a_shift, a_scale))
        return vid, act

    def forward(self, x, text, actions, timesteps, robot_ids):
        """x (B,T,Cin,H,W); text (B,L,Dt); actions (B,A,7); timesteps (B,) DDPM index; robot_ids (B,).

        Returns raw v-predictions (video (B,T,Cout,H,W), actions (B,A,7)).
        """
        B, T = x.shape[:2]
        emb = self.time_embedding(timesteps)
        h = self.embed(x, text, actions, robot_ids)
        L = text.shape[1]
        n_video = h.shape[1] - L - actions.shape[1]
        for i in range(self.cfg.num_layers):
            h = self.layer_forward(i, h, emb, L, n_video)
        return self.final(h, emb, L, actions.shape[1], T)


def official_state_dict_keys(cfg: DitConfig, include_rope_buffers: bool = True) -> list[str]:
    """The key list of the SAT checkpoint (prefix ``model.diffusion_model.`` stripped), written out
    independently of the module tree above from the official mixins (videovla-spec.md §5)."""
    keys = ["time_embed.0.weight", "time_embed.0.bias", "time_embed.2.weight", "time_embed.2.bias"]
    keys += ["mixins.pos_embed.pos_embedding", "mixins.pos_embed.action_pos_embedding",
             "mixins.pos_embed.action_robotid_embedding.weight"]
    if include_rope_buffers:
        keys += ["mixins.pos_embed.freqs_sin", "mixins.pos_embed.freqs_cos"]
    for n in ("proj", "text_proj", "action_proj"):
        keys += [f"mixins.patch_embed.{n}.weight", f"mixins.patch_embed.{n}.bias"]
    for i in range(cfg.num_layers):
        for n in (f"adaLN_modulations.{i}.1", f"query_layernorm_list.{i}", f"key_layernorm_list.{i}"):
            keys += [f"mixins.adaln_layer.{n}.weight", f"mixins.adaln_layer.{n}.bias"]
    for n in ("norm_final", "linear", "adaLN_modulation.1", "action_norm_final", "action_linear",
              "action_adaLN_modulation.1"):
        keys += [f"mixins.final_layer.{n}.weight", f"mixins.final_layer.{n}.bias"]
    for i in range(cfg.num_layers):
        for n in ("input_layernorm", "attention.query_key_value", "attention.dense",
                  "post_attention_layernorm", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"):
            keys += [f"transformer.layers.{i}.{n}.weight", f"transformer.layers.{i}.{n}.bias"]
    keys += ["transformer.final_layernorm.weight", "transformer.final_layernorm.bias",
             "transformer.position_embeddings.weight"]
    return keys
