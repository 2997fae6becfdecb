"""PyTorch reference of the CogVideoX 3D causal VAE used by VideoVLA.

Semantics follow the official SAT code (THUDM/CogVideo ``sat/vae_modules/cp_enc_dec.py``, identical
in VideoVLA's ``vae_modules``; context-parallel size 1), written from understanding, not copied.
Module and parameter names are those of diffusers' ``AutoencoderKLCogVideoX`` so the state dict
loads into diffusers unchanged and vice versa; the constructor takes diffusers' config keys.

SAT vs diffusers (numerics; this file follows SAT):

* ``encode``: SAT runs the encoder on the whole clip at once. diffusers' ``_encode`` runs it in
  frame batches of ``num_sample_frames_batch_size`` (8) carrying a conv cache, so GroupNorm
  statistics are per batch and the result differs for clips longer than 9 frames. For a single
  image (VideoVLA inference) both are identical.
* ``decode``: SAT's sampling script decodes latent frames [0:3], [3:5], ..., [T-2:T] carrying the
  causal-conv cache across chunks (GroupNorm per chunk) -- the same chunking as diffusers' ``_decode``.
* GroupNorm group count: SAT hard-codes 32 groups; here it is ``norm_num_groups`` (32 in the
  released config), as in diffusers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def silu(x):
    return x * torch.sigmoid(x)


class CausalConv3d(nn.Module):
    """SAT ``ContextParallelCausalConv3d``: time padding = (k_t-1) copies of the first frame (or the
    cached last k_t-1 frames of the previous chunk's padded input), zero spatial padding."""

    def __init__(self, in_channels, out_channels, kernel_size=3):
        super().__init__()
        self.time_kernel_size = kernel_size
        self.pad = kernel_size // 2
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=1, padding=(0, self.pad, self.pad))
        self.cache = None

    def forward(self, x, clear_cache: bool = True):
        k = self.time_kernel_size
        if k > 1:
            front = self.cache if self.cache is not None else x[:, :, :1].expand(-1, -1, k - 1, -1, -1)
            x = torch.cat([front, x], dim=2)
            self.cache = None if clear_cache else x[:, :, -(k - 1):].clone()
        return self.conv(x)


class SpatialNorm3D(nn.Module):
    """Decoder norm: GroupNorm(f) * conv_y(zq) + conv_b(zq), zq resized (nearest) to f; for an odd
    frame count > 1 the first frame and the rest are resized separately."""

    def __init__(self, f_channels, zq_channels, groups, eps=1e-6):
        super().__init__()
        self.norm_layer = nn.GroupNorm(groups, f_channels, eps=eps, affine=True)
        self.conv_y = CausalConv3d(zq_channels, f_channels, kernel_size=1)
        self.conv_b = CausalConv3d(zq_channels, f_channels, kernel_size=1)

    def forward(self, f, zq):
        if f.shape[2] > 1 and f.shape[2] % 2 == 1:
            z_first = F.interpolate(zq[:, :, :1], size=f[:, :, :1].shape[-3:], mode="nearest")
            z_rest = F.interpolate(zq[:, :, 1:], size=f[:, :, 1:].shape[-3:], mode="nearest")
            zq = torch.cat([z_first, z_rest], dim=2)
        else:
            zq = F.interpolate(zq, size=f.shape[-3:], mode="nearest")
        return self.norm_layer(f) * self.conv_y(zq) + self.conv_b(zq)


class ResnetBlock3D(nn.Module):
    def __init__(self, in_channels, out_channels, groups, eps, spatial_norm_dim=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        if spatial_norm_dim is None:
            self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
            self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        else:
            self.norm1 = SpatialNorm3D(in_channels, spatial_norm_dim, groups)
            self.norm2 = SpatialNorm3D(out_channels, spatial_norm_dim, groups)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3)
        if in_channels != out_channels:
            self.conv_shortcut = nn.Conv3d(in_channels, out_channels, kernel_size=1)  # SAT: nin_shortcut

    def _norm(self, norm, h, zq):
        return norm(h, zq) if zq is not None else norm(h)

    def forward(self, x, zq=None, clear_cache=True):
        h = silu(self._norm(self.norm1, x, zq))
        h = self.conv1(h, clear_cache)
        h = silu(self._norm(self.norm2, h, zq))
        h = self.conv2(h, clear_cache)
        if self.in_channels != self.out_channels:
            x = self.conv_shortcut(x)
        return x + h


class Downsample3D(nn.Module):
    """SAT ``DownSample3D`` with conv: optional time ×1/2 (avg-pool pairs; an odd count keeps frame 0
    alone), then pad (0,1,0,1) and Conv2d(k3, s2) per frame."""

    def __init__(self, channels, compress_time):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)
        self.compress_time = compress_time

    def forward(self, x):
        if self.compress_time and x.shape[2] > 1:
            B, C, T, H, W = x.shape
            y = x.permute(0, 3, 4, 1, 2).reshape(B * H * W, C, T)
            if T % 2 == 1:
                first, rest = y[..., :1], y[..., 1:]
                if rest.shape[-1] > 0:
                    rest = F.avg_pool1d(rest, kernel_size=2, stride=2)
                y = torch.cat([first, rest], dim=-1)
            else:
                y = F.avg_pool1d(y, kernel_size=2, stride=2)
            x = y.reshape(B, H, W, C, y.shape[-1]).permute(0, 3, 4, 1, 2)
        x = F.pad(x, (0, 1, 0, 1))
        B, C, T = x.shape[:3]
        y = self.conv(x.transpose(1, 2).reshape(B * T, C, *x.shape[-2:]))
        return y.reshape(B, T, *y.shape[1:]).transpose(1, 2)


class Upsample3D(nn.Module):
    """SAT ``Upsample3D`` with conv: nearest ×2 in space (and in time when compress_time and T > 1;
    an odd count keeps frame 0 single), then Conv2d(k3, p1) per frame."""

    def __init__(self, channels, compress_time):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)
        self.compress_time = compress_time

    def forward(self, x):
        B, C, T = x.shape[:3]
        if self.compress_time and T > 1:
            if T % 2 == 1:
                first = F.interpolate(x[:, :, 0], scale_factor=2.0, mode="nearest")
                rest = F.interpolate(x[:, :, 1:], scale_factor=2.0, mode="nearest")
                x = torch.cat([first[:, :, None], rest], dim=2)
            else:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            y = F.interpolate(x.transpose(1, 2).reshape(B * T, C, *x.shape[-2:]), scale_factor=2.0, mode="nearest")
            x = y.reshape(B, T, *y.shape[1:]).transpose(1, 2)
        B, C, T = x.shape[:3]
        y = self.conv(x.transpose(1, 2).reshape(B * T, C, *x.shape[-2:]))
        return y.reshape(B, T, *y.shape[1:]).transpose(1, 2)


class DownBlock3D(nn.Module):
    def __init__(self, in_channels, out_channels, num_layers, groups, eps, add_downsample, compress_time):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock3D(in_channels if i == 0 else out_channels, out_channels, groups, eps) for i in range(num_layers)]
        )
        self.downsamplers = nn.ModuleList([Downsample3D(out_channels, compress_time)]) if add_downsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
        return x


class MidBlock3D(nn.Module):
    def __init__(self, channels, groups, eps, spatial_norm_dim=None):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock3D(channels, channels, groups, eps, spatial_norm_dim) for _ in range(2)])

    def forward(self, x, zq=None, clear_cache=True):
        for r in self.resnets:
            x = r(x, zq, clear_cache)
        return x


class UpBlock3D(nn.Module):
    def __init__(self, in_channels, out_channels, num_layers, groups, eps, spatial_norm_dim, add_upsample, compress_time):
        super().__init__()
        self.resnets = nn.ModuleList(
            [
                ResnetBlock3D(in_channels if i == 0 else out_channels, out_channels, groups, eps, spatial_norm_dim)
                for i in range(num_layers)
            ]
        )
        self.upsamplers = nn.ModuleList([Upsample3D(out_channels, compress_time)]) if add_upsample else None

    def forward(self, x, zq, clear_cache=True):
        for r in self.resnets:
            x = r(x, zq, clear_cache)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class Encoder3D(nn.Module):
    def __init__(self, in_channels, latent_channels, block_out_channels, layers_per_block, groups, eps, temporal_compression_ratio):
        super().__init__()
        level = int(math.log2(temporal_compression_ratio))
        chs = list(block_out_channels)
        self.conv_in = CausalConv3d(in_channels, chs[0], 3)
        self.down_blocks = nn.ModuleList()
        prev = chs[0]
        for i, c in enumerate(chs):
            self.down_blocks.append(
                DownBlock3D(prev, c, layers_per_block, groups, eps, add_downsample=i != len(chs) - 1, compress_time=i < level)
            )
            prev = c
        self.mid_block = MidBlock3D(chs[-1], groups, eps)
        self.norm_out = nn.GroupNorm(groups, chs[-1], eps=1e-6)
        self.conv_out = CausalConv3d(chs[-1], 2 * latent_channels, 3)

    def forward(self, x):
        h = self.conv_in(x)
        for b in self.down_blocks:
            h = b(h)
        h = self.mid_block(h)
        return self.conv_out(silu(self.norm_out(h)))


class Decoder3D(nn.Module):
    def __init__(self, latent_channels, out_channels, block_out_channels, layers_per_block, groups, eps, temporal_compression_ratio):
        super().__init__()
        level = int(math.log2(temporal_compression_ratio))
        rev = list(reversed(block_out_channels))
        self.conv_in = CausalConv3d(latent_channels, rev[0], 3)
        self.mid_block = MidBlock3D(rev[0], groups, eps, spatial_norm_dim=latent_channels)
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i, c in enumerate(rev):
            self.up_blocks.append(
                UpBlock3D(prev, c, layers_per_block + 1, groups, eps, latent_channels,
                          add_upsample=i != len(rev) - 1, compress_time=i < level)
            )
            prev = c
        self.norm_out = SpatialNorm3D(rev[-1], latent_channels, groups)
        self.conv_out = CausalConv3d(rev[-1], out_channels, 3)

    def forward(self, z, clear_cache=True):
        zq = z
        h = self.conv_in(z, clear_cache)
        h = self.mid_block(h, zq, clear_cache)
        for b in self.up_blocks:
            h = b(h, zq, clear_cache)
        h = silu(self.norm_out(h, zq))
        return self.conv_out(h, clear_cache)

    def reset_cache(self):
        for m in self.modules():
            if isinstance(m, CausalConv3d):
                m.cache = None


class CogVideoXVAE(nn.Module):
    """Config = diffusers ``AutoencoderKLCogVideoX`` keys (unknown keys are ignored)."""

    def __init__(
        self,
        in_channels=3,
        out_channels=3,
        block_out_channels=(128, 256, 256, 512),
        latent_channels=16,
        layers_per_block=3,
        norm_eps=1e-6,
        norm_num_groups=32,
        temporal_compression_ratio=4,
        scaling_factor=0.7,
        use_quant_conv=False,
        use_post_quant_conv=False,
        **ignored,
    ):
        super().__init__()
        assert not use_quant_conv and not use_post_quant_conv, "CogVideoX has no quant convs"
        self.scaling_factor = scaling_factor
        # Optional per-position latent mean (C, h, w) removed before scaling (an extension for the tiny
        # sim model, whose static camera makes one spatial pattern dominate every latent; absent in
        # the released and diffusers checkpoints). Saved in vae.safetensors as "latent_shift".
        self.register_buffer("latent_shift", None)
        self.encoder = Encoder3D(in_channels, latent_channels, block_out_channels, layers_per_block,
                                 norm_num_groups, norm_eps, temporal_compression_ratio)
        self.decoder = Decoder3D(latent_channels, out_channels, block_out_channels, layers_per_block,
                                 norm_num_groups, norm_eps, temporal_compression_ratio)

    @classmethod
    def from_config(cls, cfg: dict) -> "CogVideoXVAE":
        return cls(**{k: v for k, v in cfg.items() if not k.startswith("_")})

    def encode(self, x):
        """x (B,3,F,H,W) in [-1,1] -> (mean, logvar) (B,C,(F-1)/4+1,H/8,W/8); whole clip at once (SAT).
        logvar is clamped to [-30, 20] (``DiagonalGaussianDistribution``). The official pipeline then
        *samples* z = mean + exp(0.5 logvar) * eps (``DiagonalGaussianRegularizer(sample=True)``, also at
        inference) and multiplies by scaling_factor."""
        h = self.encoder(x)
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def to_dit(self, z: torch.Tensor) -> torch.Tensor:
        """Posterior mean or sample (B,C,T,h,w) -> the DiT's latent: (z - latent_shift) * scaling_factor."""
        if self.latent_shift is not None:
            z = z - self.latent_shift[None, :, None].to(z.dtype)
        return z * self.scaling_factor

    def from_dit(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of `to_dit`: (B,C,T,h,w) DiT latent -> VAE latent for `decode`."""
        z = z / self.scaling_factor
        if self.latent_shift is not None:
            z = z + self.latent_shift[None, :, None].to(z.dtype)
        return z

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        state = dict(state)
        shift = state.pop("latent_shift", None)
        self.latent_shift = None
        r = super().load_state_dict(state, strict=strict, assign=assign)
        self.latent_shift = None if shift is None else shift.detach().clone().float()
        return r

    @staticmethod
    def decode_chunks(num_frames: int) -> list[tuple[int, int]]:
        """[0:3], [3:5], ..., [T-2:T] for odd T (official); the same rule as diffusers otherwise."""
        n = max(num_frames // 2, 1)
        rem = num_frames % 2
        return [(2 * i + (0 if i == 0 else rem), 2 * (i + 1) + rem) for i in range(n)]

    def decode(self, z):
        """z (B,C,T,h,w) already divided by scaling_factor -> video (B,3,F,H,W); chunked with the
        causal-conv cache carried across chunks and cleared after the last one."""
        self.decoder.reset_cache()
        chunks = self.decode_chunks(z.shape[2])
        out = []
        for j, (a, b) in enumerate(chunks):
            out.append(self.decoder(z[:, :, a:b], clear_cache=j == len(chunks) - 1))
        return torch.cat(out, dim=2)
