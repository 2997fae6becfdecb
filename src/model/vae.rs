//! The CogVideoX 3-D causal VAE (diffusers `AutoencoderKLCogVideoX`, as installed: 0.42.1).
//!
//! Weight names are diffusers' (`encoder.down_blocks.0.resnets.0.conv1.conv.weight`, …).
//! Tensors use the PyTorch layout `(B, C, T, H, W)` throughout (see `conv3d.rs` for how the
//! 3-D convolutions are computed).
//!
//! Chunking matters because GroupNorm statistics are per chunk:
//! * `decode`: latent frames in chunks of 2, the remainder joining the first chunk
//!   (13 → [0:3], [3:5], …, [11:13]), causal-conv caches carried between chunks — the same in
//!   the official SAT code and in diffusers.
//! * `encode`: **the whole clip at once**, as the official SAT code (and the `vae_tiny`
//!   fixture) does. diffusers 0.42.1 instead runs the encoder in 8-frame batches
//!   (`num_sample_frames_batch_size = 8`: pixel frames [0:8+r], [8+r:16+r], … with r = T mod 8,
//!   49 → [0:9], [9:17], …, [41:49]) with a conv cache, which changes the posterior of a clip
//!   (15 % on the tiny fixture clip); set [`AutoencoderKLCogVideoX::encode_frame_batch`] to 8
//!   to reproduce diffusers (checked against diffusers 0.42.1: 1.1e-6). A single image — all
//!   VideoVLA inference encodes — is identical either way.
//! * The official `encode_first_stage` *samples* the posterior (`mean + exp(logvar/2)·ε`);
//!   `encode` returns `(mean, logvar)`, and [`sample_posterior`] does the sampling with a given ε.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::conv3d::{conv3d_cthw, CausalConv3d, Conv3dAlgo, Conv3dWeights, ConvCache, PointwiseConv3d};

/// `silu(GroupNorm(x) · scale + shift)` fused into one pass on the CPU (f32): the statistics per
/// (batch, group) in f64, then per element `scale`/`shift` read from a low-resolution
/// modulation tensor `m: (Bm, 2C, tm, hm, wm)` (channels `[scale | shift]`, `Bm` 1 or B) through
/// nearest index maps. Plain GroupNorm is the case `m = [weight | bias]` of shape
/// `(1, 2C, 1, 1, 1)`; the spatial norm passes `[conv_y(zq) | conv_b(zq)]` at latent size, so
/// the up-sampled modulation is never materialised. Other devices/dtypes use tensor ops.
struct GnModSilu {
    groups: usize,
    eps: f64,
    tmap: Vec<usize>,
    hmap: Vec<usize>,
    wmap: Vec<usize>,
    /// The norm's own per-channel affine, applied before the modulation (spatial norm).
    affine: Option<(Vec<f32>, Vec<f32>)>,
}

impl candle_core::CustomOp2 for GnModSilu {
    fn name(&self) -> &'static str {
        "group-norm-modulate-silu"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (Some((o1, e1)), Some((o2, e2))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("group-norm-modulate-silu: inputs must be contiguous")
        };
        let x = &s1.as_slice::<f32>()?[o1..e1];
        let m = &s2.as_slice::<f32>()?[o2..e2];
        let (b, c, t, h, w) = l1.shape().dims5()?;
        let (mb, c2, mt, mh, mw) = l2.shape().dims5()?;
        if c2 != 2 * c || (mb != 1 && mb != b) || self.tmap.len() != t || self.hmap.len() != h || self.wmap.len() != w {
            candle_core::bail!("group-norm-modulate-silu: bad shapes {:?} / {:?}", l1.shape(), l2.shape())
        }
        let (g, s) = (self.groups, t * h * w);
        let cg = c / g;
        let threads = candle_core::utils::get_num_threads().clamp(1, b * c);
        // Statistics per (batch, group): contiguous blocks of cg·s elements.
        let stats: Vec<(f32, f32)> = {
            let block = cg * s;
            let stat = |blk: &[f32]| {
                let (mut sum, mut sq) = (0f64, 0f64);
                for &v in blk {
                    sum += v as f64;
                    sq += (v as f64) * (v as f64);
                }
                let n = blk.len() as f64;
                let mean = sum / n;
                let var = (sq / n - mean * mean).max(0.0);
                (mean as f32, (1.0 / (var + self.eps).sqrt()) as f32)
            };
            let blocks: Vec<&[f32]> = x.chunks(block).collect();
            let per = blocks.len().div_ceil(threads);
            std::thread::scope(|sc| {
                let hs: Vec<_> = blocks.chunks(per).map(|bs| sc.spawn(move || bs.iter().map(|b| stat(b)).collect::<Vec<_>>())).collect();
                hs.into_iter().flat_map(|h| h.join().expect("stats thread")).collect()
            })
        };
        let mut out = vec![0f32; x.len()];
        let per = (b * c).div_ceil(threads);
        let (tmap, hmap, wmap) = (&self.tmap, &self.hmap, &self.wmap);
        std::thread::scope(|sc| {
            for (k, (dst, src)) in out.chunks_mut(per * s).zip(x.chunks(per * s)).enumerate() {
                let stats = &stats;
                sc.spawn(move || {
                    for (j, (dch, xch)) in dst.chunks_mut(s).zip(src.chunks(s)).enumerate() {
                        let bc = k * per + j;
                        let (bi, ci) = (bc / c, bc % c);
                        let (mean, rstd) = stats[bi * g + ci / cg];
                        let (aw, ab) = match &self.affine {
                            Some((w, b)) => (w[ci], b[ci]),
                            None => (1.0, 0.0),
                        };
                        let mbi = if mb == 1 { 0 } else { bi };
                        let sbase = (mbi * c2 + ci) * mt;
                        let bbase = (mbi * c2 + c + ci) * mt;
                        for (ti, &tm) in tmap.iter().enumerate() {
                            for (hi, &hm) in hmap.iter().enumerate() {
                                let srow = ((sbase + tm) * mh + hm) * mw;
                                let brow = ((bbase + tm) * mh + hm) * mw;
                                let o = (ti * h + hi) * w;
                                let (xr, dr) = (&xch[o..o + w], &mut dch[o..o + w]);
                                for ((d, &xv), &wm) in dr.iter_mut().zip(xr).zip(wmap.iter()) {
                                    let xn = (xv - mean) * rstd * aw + ab;
                                    let v = xn * m[srow + wm] + m[brow + wm];
                                    *d = v / (1.0 + (-v).exp());
                                }
                            }
                        }
                    }
                });
            }
        });
        Ok((candle_core::CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// PyTorch nearest index map `src = min(floor(dst · in/out), in − 1)`.
fn nearest_map(n_in: usize, n_out: usize) -> Vec<usize> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out).map(|d| ((d as f32 * scale).floor() as usize).min(n_in - 1)).collect()
}

/// True if the fused CPU kernel applies to these tensors.
fn fused_ok(x: &Tensor, m: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && m.dtype() == DType::F32
}

/// GroupNorm (channels `[weight | bias]` kept also as a `(1, 2C, 1, 1, 1)` modulation).
#[derive(Debug, Clone)]
struct GroupNorm3d {
    gn: candle_nn::GroupNorm,
    wb: Tensor,
    groups: usize,
    eps: f64,
}

fn group_norm(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<GroupNorm3d> {
    let gn = candle_nn::group_norm(groups, channels, eps, vb.clone())?;
    let wb = Tensor::cat(&[vb.get(channels, "weight")?, vb.get(channels, "bias")?], 0)?.reshape((1, 2 * channels, 1, 1, 1))?;
    Ok(GroupNorm3d { gn, wb, groups, eps })
}

impl GroupNorm3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.gn.forward(x)
    }

    /// `silu(GroupNorm(x))`.
    fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_mod_silu(x, &self.wb, None, false)
    }

    /// `silu(norm(x) · m[:C] + m[C:])` with `m` resized (nearest) to `x`; `tmap` overrides the
    /// time index map. Without the fused kernel: `silu(norm(x) · scale + shift)` in tensor ops,
    /// the caller's job for non-trivial `m` (see `SpatialNorm3d`).
    fn forward_mod_silu(&self, x: &Tensor, m: &Tensor, tmap: Option<Vec<usize>>, affine: bool) -> Result<Tensor> {
        let (_, _, t, h, w) = x.dims5()?;
        let (_, _, mt, mh, mw) = m.dims5()?;
        if fused_ok(x, m) {
            let op = GnModSilu {
                groups: self.groups,
                eps: self.eps,
                tmap: tmap.unwrap_or_else(|| nearest_map(mt, t)),
                hmap: nearest_map(mh, h),
                wmap: nearest_map(mw, w),
                affine: if affine {
                    let c = self.wb.dim(1)? / 2;
                    let wb = self.wb.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                    Some((wb[..c].to_vec(), wb[c..].to_vec()))
                } else {
                    None
                },
            };
            return x.contiguous()?.apply_op2_no_bwd(&m.contiguous()?, &op);
        }
        silu(&self.forward(x)?)
    }
}


/// diffusers' `vae/config.json` for `AutoencoderKLCogVideoX`; unknown keys are ignored and
/// missing keys take the released CogVideoX(-5B-I2V) values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VaeConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub latent_channels: usize,
    pub layers_per_block: usize,
    pub norm_eps: f64,
    pub norm_num_groups: usize,
    pub temporal_compression_ratio: f64,
    pub scaling_factor: f64,
    pub shift_factor: Option<f64>,
    pub act_fn: String,
    pub down_block_types: Option<Vec<String>>,
    pub up_block_types: Option<Vec<String>>,
    pub use_quant_conv: bool,
    pub use_post_quant_conv: bool,
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            block_out_channels: vec![128, 256, 256, 512],
            latent_channels: 16,
            layers_per_block: 3,
            norm_eps: 1e-6,
            norm_num_groups: 32,
            temporal_compression_ratio: 4.0,
            scaling_factor: 0.7,
            shift_factor: None,
            act_fn: "silu".into(),
            down_block_types: None,
            up_block_types: None,
            use_quant_conv: false,
            use_post_quant_conv: false,
        }
    }
}

impl VaeConfig {
    /// The released CogVideoX-5B(-I2V) VAE with VideoVLA's scale factor 0.7.
    pub fn released() -> Self {
        Self::default()
    }

    /// A small VAE with the same structure (4 levels, 8× spatial, 4× temporal compression).
    pub fn tiny() -> Self {
        Self {
            block_out_channels: vec![16, 32, 32, 32],
            latent_channels: 4,
            layers_per_block: 1,
            norm_num_groups: 4,
            ..Self::default()
        }
    }

    /// Parse a diffusers config.json, or a fixture json holding it under `"config"`.
    pub fn from_json_str(s: &str) -> anyhow::Result<Self> {
        let v: serde_json::Value = serde_json::from_str(s)?;
        let v = match v.get("config") {
            Some(c) if c.is_object() => c.clone(),
            _ => v,
        };
        let cfg: Self = serde_json::from_value(v)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let n = self.block_out_channels.len();
        anyhow::ensure!(n >= 1, "VAE config: block_out_channels is empty");
        for (key, types, want) in [
            ("down_block_types", &self.down_block_types, "CogVideoXDownBlock3D"),
            ("up_block_types", &self.up_block_types, "CogVideoXUpBlock3D"),
        ] {
            if let Some(t) = types {
                anyhow::ensure!(t.len() == n, "VAE config: {key} has {} entries, block_out_channels {n}", t.len());
                anyhow::ensure!(t.iter().all(|s| s == want), "VAE config: {key} must all be {want}, got {t:?}");
            }
        }
        anyhow::ensure!(matches!(self.act_fn.as_str(), "silu" | "swish"), "VAE config: act_fn {} unsupported", self.act_fn);
        for &c in &self.block_out_channels {
            anyhow::ensure!(
                self.norm_num_groups > 0 && c % self.norm_num_groups == 0,
                "VAE config: norm_num_groups {} does not divide {c}",
                self.norm_num_groups
            );
        }
        anyhow::ensure!(self.temporal_compress_level() < n, "VAE config: temporal compression too large");
        Ok(())
    }

    /// log2(temporal_compression_ratio): how many of the first blocks also halve time.
    pub fn temporal_compress_level(&self) -> usize {
        self.temporal_compression_ratio.log2().floor() as usize
    }

    /// Pixel frames produced for `t` latent frames: 1 + ratio·(t−1).
    pub fn frames_for_latents(&self, t: usize) -> usize {
        let r = 1usize << self.temporal_compress_level();
        if t == 0 { 0 } else { 1 + r * (t - 1) }
    }
}

fn silu(x: &Tensor) -> Result<Tensor> {
    x.silu()
}

/// Nearest resize of `(B, C, t, h, w)` to `(B, C, T, H, W)` with PyTorch's
/// `F.interpolate(mode="nearest", size=...)` index rule `src = floor(dst · in/out)`.
fn resize_nearest_3d(x: &Tensor, t_out: usize, h_out: usize, w_out: usize) -> Result<Tensor> {
    let (b, c, t, h, w) = x.dims5()?;
    let x = if (h, w) != (h_out, w_out) {
        x.reshape((b, c * t, h, w))?.upsample_nearest2d(h_out, w_out)?.reshape((b, c, t, h_out, w_out))?
    } else {
        x.clone()
    };
    if t == t_out {
        return Ok(x);
    }
    let scale = t as f32 / t_out as f32;
    let idx: Vec<u32> = (0..t_out).map(|d| ((d as f32 * scale).floor() as usize).min(t - 1) as u32).collect();
    let idx = Tensor::new(idx.as_slice(), x.device())?;
    x.index_select(&idx, 2)
}

/// diffusers `CogVideoXSpatialNorm3D`: `GroupNorm(f)·conv_y(zq') + conv_b(zq')`, `zq'` the
/// latent resized to `f` (first frame separately when `f` has an odd number > 1 of frames).
/// conv_y/conv_b are pointwise, so they run on the small latent before the (exactly
/// commuting) nearest resize, fused into one convolution.
#[derive(Debug, Clone)]
struct SpatialNorm3d {
    norm: GroupNorm3d,
    conv_yb: PointwiseConv3d,
    channels: usize,
}

impl SpatialNorm3d {
    fn new(f_channels: usize, zq_channels: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        let norm = group_norm(groups, f_channels, 1e-6, vb.pp("norm_layer"))?;
        let conv_y = PointwiseConv3d::new(zq_channels, f_channels, vb.pp("conv_y").pp("conv"))?;
        let conv_b = PointwiseConv3d::new(zq_channels, f_channels, vb.pp("conv_b").pp("conv"))?;
        let conv_yb = PointwiseConv3d::concat(&[&conv_y, &conv_b])?;
        Ok(Self { norm, conv_yb, channels: f_channels })
    }

    fn forward(&self, f: &Tensor, zq: &Tensor) -> Result<Tensor> {
        let (_, _, t, h, w) = f.dims5()?;
        let yb = self.conv_yb.forward(zq)?;
        let zt = zq.dim(2)?;
        let yb = if t > 1 && t % 2 == 1 {
            let first = resize_nearest_3d(&yb.narrow(2, 0, 1)?, 1, h, w)?;
            let rest = resize_nearest_3d(&yb.narrow(2, 1, zt - 1)?, t - 1, h, w)?;
            Tensor::cat(&[&first, &rest], 2)?
        } else {
            resize_nearest_3d(&yb, t, h, w)?
        };
        let y = yb.narrow(1, 0, self.channels)?;
        let b = yb.narrow(1, self.channels, self.channels)?;
        self.norm.forward(f)?.mul(&y)?.add(&b)
    }

    /// `silu(forward(f, zq))`, fused on the CPU (the modulation stays at latent size).
    fn forward_silu(&self, f: &Tensor, zq: &Tensor) -> Result<Tensor> {
        let yb = self.conv_yb.forward(zq)?;
        if !fused_ok(f, &yb) {
            return silu(&self.forward(f, zq)?);
        }
        let (_, _, t, _, _) = f.dims5()?;
        let zt = zq.dim(2)?;
        let tmap = if t > 1 && t % 2 == 1 && zt > 1 {
            // First frame from the first latent, the rest resized from the other latents.
            std::iter::once(0).chain(nearest_map(zt - 1, t - 1).into_iter().map(|i| i + 1)).collect()
        } else {
            nearest_map(zt, t)
        };
        self.norm.forward_mod_silu(f, &yb, Some(tmap), true)
    }
}

#[derive(Debug, Clone)]
enum Norm {
    Group(GroupNorm3d),
    Spatial(SpatialNorm3d),
}

impl Norm {
    /// `silu(norm(x))`.
    fn forward_silu(&self, x: &Tensor, zq: Option<&Tensor>) -> Result<Tensor> {
        match (self, zq) {
            (Norm::Group(n), _) => n.forward_silu(x),
            (Norm::Spatial(n), Some(z)) => n.forward_silu(x, z),
            (Norm::Spatial(_), None) => candle_core::bail!("spatial norm needs the latent"),
        }
    }
}

/// diffusers `CogVideoXResnetBlock3D` (no time embedding, no conv shortcut option).
#[derive(Debug, Clone)]
struct ResnetBlock3d {
    norm1: Norm,
    conv1: CausalConv3d,
    norm2: Norm,
    conv2: CausalConv3d,
    shortcut: Option<PointwiseConv3d>,
}

impl ResnetBlock3d {
    fn new(in_c: usize, out_c: usize, cfg: &VaeConfig, spatial_norm_dim: Option<usize>, vb: VarBuilder) -> Result<Self> {
        let g = cfg.norm_num_groups;
        let (norm1, norm2) = match spatial_norm_dim {
            None => (
                Norm::Group(group_norm(g, in_c, cfg.norm_eps, vb.pp("norm1"))?),
                Norm::Group(group_norm(g, out_c, cfg.norm_eps, vb.pp("norm2"))?),
            ),
            Some(z) => (
                Norm::Spatial(SpatialNorm3d::new(in_c, z, g, vb.pp("norm1"))?),
                Norm::Spatial(SpatialNorm3d::new(out_c, z, g, vb.pp("norm2"))?),
            ),
        };
        let conv1 = CausalConv3d::new(in_c, out_c, 3, vb.pp("conv1"))?;
        let conv2 = CausalConv3d::new(out_c, out_c, 3, vb.pp("conv2"))?;
        let shortcut = if in_c != out_c { Some(PointwiseConv3d::new(in_c, out_c, vb.pp("conv_shortcut"))?) } else { None };
        Ok(Self { norm1, conv1, norm2, conv2, shortcut })
    }

    fn forward(&self, x: &Tensor, zq: Option<&Tensor>, cache: &mut ConvCache) -> Result<Tensor> {
        let h = self.norm1.forward_silu(x, zq)?;
        let h = self.conv1.forward(&h, Some(cache))?;
        let h = self.norm2.forward_silu(&h, zq)?;
        let h = self.conv2.forward(&h, Some(cache))?;
        let skip = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        h + skip
    }
}

/// A `Conv2d(c, c, 3)` applied to every frame of `(B, C, T, H, W)` (`{prefix}.conv.weight`,
/// `{prefix}.conv.bias`), as a 3-D convolution with a time kernel of 1.
#[derive(Debug, Clone)]
struct FrameConv2d {
    w: Conv3dWeights,
}

impl FrameConv2d {
    fn new(c: usize, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("conv");
        let w = vb.get((c, c, 3, 3), "weight")?.unsqueeze(2)?;
        Ok(Self { w: Conv3dWeights::new(w, Some(vb.get(c, "bias")?))? })
    }

    fn forward(&self, x: &Tensor, pad: (usize, usize), stride: usize) -> Result<Tensor> {
        conv3d_cthw(x, &self.w, pad, stride, Conv3dAlgo::Auto)
    }
}

/// diffusers `CogVideoXDownsample3D` / `CogVideoXUpsample3D` (weights `{prefix}.conv.*`).
#[derive(Debug, Clone)]
struct Resample3d {
    conv: FrameConv2d,
    compress_time: bool,
    up: bool,
}

impl Resample3d {
    fn new(c: usize, compress_time: bool, up: bool, vb: VarBuilder) -> Result<Self> {
        Ok(Self { conv: FrameConv2d::new(c, vb)?, compress_time, up })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.up {
            self.upsample(x)
        } else {
            self.downsample(x)
        }
    }

    /// Optional time halving (first frame kept when the frame count is odd, then pairs
    /// averaged), zero pad right/bottom by 1, Conv2d k3 s2 per frame.
    fn downsample(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        if self.compress_time {
            let (b, c, t, h, w) = x.dims5()?;
            let pairs = |y: &Tensor, n: usize| -> Result<Tensor> {
                // (a + b) / 2 as avg_pool1d(kernel 2, stride 2).
                let y = y.reshape((b, c, n / 2, 2, h, w))?;
                (y.narrow(3, 0, 1)?.squeeze(3)? + y.narrow(3, 1, 1)?.squeeze(3)?)? / 2.0
            };
            x = if t % 2 == 1 {
                if t > 1 {
                    Tensor::cat(&[&x.narrow(2, 0, 1)?, &pairs(&x.narrow(2, 1, t - 1)?, t - 1)?], 2)?
                } else {
                    x
                }
            } else {
                pairs(&x, t)?
            };
        }
        self.conv.forward(&x, (0, 1), 2)
    }

    /// Nearest ×2 in space (and in time when `compress_time`, the first frame of an odd
    /// count > 1 not doubled), then Conv2d k3 p1 per frame.
    fn upsample(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t, h, w) = x.dims5()?;
        let x = x.reshape((b, c * t, h, w))?.upsample_nearest2d(2 * h, 2 * w)?.reshape((b, c, t, 2 * h, 2 * w))?;
        let x = if self.compress_time && t > 1 {
            let idx: Vec<u32> = if t % 2 == 1 {
                std::iter::once(0).chain((1..t as u32).flat_map(|i| [i, i])).collect()
            } else {
                (0..t as u32).flat_map(|i| [i, i]).collect()
            };
            x.index_select(&Tensor::new(idx.as_slice(), x.device())?, 2)?
        } else {
            x
        };
        self.conv.forward(&x, (1, 1), 1)
    }
}

#[derive(Debug, Clone)]
struct Encoder {
    conv_in: CausalConv3d,
    down: Vec<(Vec<ResnetBlock3d>, Option<Resample3d>)>,
    mid: Vec<ResnetBlock3d>,
    norm_out: GroupNorm3d,
    conv_out: CausalConv3d,
}

impl Encoder {
    fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let conv_in = CausalConv3d::new(cfg.in_channels, ch[0], 3, vb.pp("conv_in"))?;
        let mut down = Vec::with_capacity(n);
        let mut out_c = ch[0];
        for (i, &c) in ch.iter().enumerate() {
            let in_c = out_c;
            out_c = c;
            let vbb = vb.pp("down_blocks").pp(i);
            let resnets = (0..cfg.layers_per_block)
                .map(|j| ResnetBlock3d::new(if j == 0 { in_c } else { out_c }, out_c, cfg, None, vbb.pp("resnets").pp(j)))
                .collect::<Result<Vec<_>>>()?;
            let ds = if i + 1 < n {
                Some(Resample3d::new(out_c, i < cfg.temporal_compress_level(), false, vbb.pp("downsamplers").pp(0))?)
            } else {
                None
            };
            down.push((resnets, ds));
        }
        let c = ch[n - 1];
        let mid = (0..2)
            .map(|j| ResnetBlock3d::new(c, c, cfg, None, vb.pp("mid_block").pp("resnets").pp(j)))
            .collect::<Result<Vec<_>>>()?;
        let norm_out = group_norm(cfg.norm_num_groups, c, 1e-6, vb.pp("norm_out"))?;
        let conv_out = CausalConv3d::new(c, 2 * cfg.latent_channels, 3, vb.pp("conv_out"))?;
        Ok(Self { conv_in, down, mid, norm_out, conv_out })
    }

    fn forward(&self, x: &Tensor, cache: &mut ConvCache) -> Result<Tensor> {
        cache.begin();
        let mut h = self.conv_in.forward(x, Some(cache))?;
        for (resnets, ds) in &self.down {
            for r in resnets {
                h = r.forward(&h, None, cache)?;
            }
            if let Some(ds) = ds {
                h = ds.forward(&h)?;
            }
        }
        for r in &self.mid {
            h = r.forward(&h, None, cache)?;
        }
        let h = self.norm_out.forward_silu(&h)?;
        self.conv_out.forward(&h, Some(cache))
    }
}

#[derive(Debug, Clone)]
struct Decoder {
    conv_in: CausalConv3d,
    mid: Vec<ResnetBlock3d>,
    up: Vec<(Vec<ResnetBlock3d>, Option<Resample3d>)>,
    norm_out: SpatialNorm3d,
    conv_out: CausalConv3d,
}

impl Decoder {
    fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let rev: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let n = rev.len();
        let z = cfg.latent_channels;
        let conv_in = CausalConv3d::new(z, rev[0], 3, vb.pp("conv_in"))?;
        let mid = (0..2)
            .map(|j| ResnetBlock3d::new(rev[0], rev[0], cfg, Some(z), vb.pp("mid_block").pp("resnets").pp(j)))
            .collect::<Result<Vec<_>>>()?;
        let mut up = Vec::with_capacity(n);
        let mut out_c = rev[0];
        for (i, &c) in rev.iter().enumerate() {
            let in_c = out_c;
            out_c = c;
            let vbb = vb.pp("up_blocks").pp(i);
            let resnets = (0..cfg.layers_per_block + 1)
                .map(|j| ResnetBlock3d::new(if j == 0 { in_c } else { out_c }, out_c, cfg, Some(z), vbb.pp("resnets").pp(j)))
                .collect::<Result<Vec<_>>>()?;
            let us = if i + 1 < n {
                Some(Resample3d::new(out_c, i < cfg.temporal_compress_level(), true, vbb.pp("upsamplers").pp(0))?)
            } else {
                None
            };
            up.push((resnets, us));
        }
        let norm_out = SpatialNorm3d::new(rev[n - 1], z, cfg.norm_num_groups, vb.pp("norm_out"))?;
        let conv_out = CausalConv3d::new(rev[n - 1], cfg.out_channels, 3, vb.pp("conv_out"))?;
        Ok(Self { conv_in, mid, up, norm_out, conv_out })
    }

    fn forward(&self, z: &Tensor, cache: &mut ConvCache) -> Result<Tensor> {
        cache.begin();
        let mut h = self.conv_in.forward(z, Some(cache))?;
        for r in &self.mid {
            h = r.forward(&h, Some(z), cache)?;
        }
        for (resnets, us) in &self.up {
            for r in resnets {
                h = r.forward(&h, Some(z), cache)?;
            }
            if let Some(us) = us {
                h = us.forward(&h)?;
            }
        }
        let h = self.norm_out.forward_silu(&h, z)?;
        self.conv_out.forward(&h, Some(cache))
    }
}

/// Chunk ranges of diffusers' `_encode`/`_decode`: `max(n / batch, 1)` chunks of `batch`
/// frames, the remainder `n % batch` added to the first chunk.
pub fn frame_chunks(n: usize, batch: usize) -> Vec<std::ops::Range<usize>> {
    if n == 0 {
        return vec![];
    }
    let batch = batch.max(1);
    if batch >= n {
        return std::iter::once(0..n).collect();
    }
    let num = (n / batch).max(1);
    let rem = n % batch;
    (0..num)
        .map(|i| {
            let start = batch * i + if i == 0 { 0 } else { rem };
            let end = (batch * (i + 1) + rem).min(n);
            start..end
        })
        .collect()
}

/// A posterior sample `mean + exp(logvar / 2) · eps` (what the official `encode_first_stage`
/// uses, before the ×scaling_factor), with caller-provided standard-normal `eps`.
pub fn sample_posterior(mean: &Tensor, logvar: &Tensor, eps: &Tensor) -> Result<Tensor> {
    mean + (logvar * 0.5)?.exp()?.mul(eps)?
}

/// State of a chunked decode: the causal-conv caches of the previous chunks.
#[derive(Debug, Default, Clone)]
pub struct DecodeState {
    cache: ConvCache,
}

impl DecodeState {
    pub fn new() -> Self {
        Self::default()
    }
}

/// diffusers `AutoencoderKLCogVideoX` (inference: encode to the posterior, chunked decode).
#[derive(Debug, Clone)]
pub struct AutoencoderKLCogVideoX {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<PointwiseConv3d>,
    post_quant_conv: Option<PointwiseConv3d>,
    cfg: VaeConfig,
    /// Optional per-position latent mean `(C, h, w)` (f32) that the DiT's latent space is centred
    /// on: `dit = (z − latent_shift) · scaling_factor`. Not part of CogVideoX: the tiny sim model
    /// stores it in `vae.safetensors` as `latent_shift` because its static camera makes one
    /// spatial pattern dominate every latent (training/README.md). Absent: plain scaling.
    latent_shift: Option<Tensor>,
    /// Pixel frames per encoder chunk: `usize::MAX` (default) = the whole clip as the official
    /// SAT code; 8 = diffusers 0.42.1.
    pub encode_frame_batch: usize,
    /// Latent frames per decoder chunk (diffusers: 2).
    pub decode_frame_batch: usize,
}

impl AutoencoderKLCogVideoX {
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let encoder = Encoder::new(cfg, vb.pp("encoder"))?;
        let decoder = Decoder::new(cfg, vb.pp("decoder"))?;
        // diffusers sizes these with out_channels (only consistent when it equals latent).
        let quant_conv = if cfg.use_quant_conv {
            Some(PointwiseConv3d::new(2 * cfg.out_channels, 2 * cfg.out_channels, vb.pp("quant_conv"))?)
        } else {
            None
        };
        let post_quant_conv = if cfg.use_post_quant_conv {
            Some(PointwiseConv3d::new(cfg.out_channels, cfg.out_channels, vb.pp("post_quant_conv"))?)
        } else {
            None
        };
        let latent_shift = if vb.contains_tensor("latent_shift") {
            let t = vb.get_unchecked_dtype("latent_shift", candle_core::DType::F32)?;
            if t.rank() != 3 || t.dim(0)? != cfg.latent_channels {
                candle_core::bail!(
                    "latent_shift has shape {:?}, expected ({}, h, w): re-export the model",
                    t.dims(),
                    cfg.latent_channels
                );
            }
            Some(t)
        } else {
            None
        };
        Ok(Self {
            encoder,
            decoder,
            quant_conv,
            post_quant_conv,
            cfg: cfg.clone(),
            latent_shift,
            encode_frame_batch: usize::MAX,
            decode_frame_batch: 2,
        })
    }

    /// Load a diffusers-layout VAE: `config` is its config.json (or a json holding it under
    /// `"config"`), `weights` one or more safetensors files (memory-mapped).
    pub fn load(
        config: &std::path::Path,
        weights: &[std::path::PathBuf],
        dtype: candle_core::DType,
        device: &candle_core::Device,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string(config).with_context(|| format!("reading VAE config {}", config.display()))?;
        let cfg = VaeConfig::from_json_str(&text).with_context(|| format!("parsing VAE config {}", config.display()))?;
        // SAFETY: the files are memory-mapped read-only; they must not change while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(weights, dtype, device) }
            .with_context(|| format!("opening VAE weights {weights:?}"))?;
        Self::new(&cfg, vb).with_context(|| format!("loading VAE weights {weights:?}"))
    }

    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// `x: (B, in_channels, T, H, W)` in [-1, 1] → posterior `(mean, logvar)`, each
    /// `(B, latent, 1 + (T−1)/4, H/8, W/8)`; logvar clamped to [−30, 20] as diffusers'
    /// `DiagonalGaussianDistribution`. The latent for the DiT is `scaling_factor · mean`.
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = x.dim(2)?;
        let mut cache = ConvCache::new();
        let mut outs = Vec::new();
        for r in frame_chunks(t, self.encode_frame_batch) {
            let mut h = self.encoder.forward(&x.narrow(2, r.start, r.len())?, &mut cache)?;
            if let Some(q) = &self.quant_conv {
                h = q.forward(&h)?;
            }
            outs.push(h);
        }
        let h = Tensor::cat(&outs, 2)?;
        let c = h.dim(1)? / 2;
        let mean = h.narrow(1, 0, c)?.contiguous()?;
        let logvar = h.narrow(1, c, c)?.clamp(-30f32, 20f32)?;
        Ok((mean, logvar))
    }

    /// `z: (B, latent, t, h, w)`, already divided by the scaling factor → `(B, out, T, 8h, 8w)`
    /// with the official chunking (see the module docs).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let t = z.dim(2)?;
        let mut state = DecodeState::new();
        let mut outs = Vec::new();
        for r in frame_chunks(t, self.decode_frame_batch) {
            outs.push(self.decode_chunk(&z.narrow(2, r.start, r.len())?, &mut state)?);
        }
        Tensor::cat(&outs, 2)
    }

    /// The latent-frame ranges `decode` processes one after the other.
    pub fn decode_chunks(&self, latent_frames: usize) -> Vec<std::ops::Range<usize>> {
        frame_chunks(latent_frames, self.decode_frame_batch)
    }

    /// Decode one chunk of latent frames `(B, latent, t, h, w)` continuing `state` (pass the
    /// chunks of [`Self::decode_chunks`] in order to reproduce `decode` piece by piece, e.g.
    /// for previews). The first chunk of 3 latents gives 9 frames, later chunks of 2 give 8.
    pub fn decode_chunk(&self, z: &Tensor, state: &mut DecodeState) -> Result<Tensor> {
        let mut z = z.contiguous()?;
        if let Some(p) = &self.post_quant_conv {
            z = p.forward(&z)?;
        }
        self.decoder.forward(&z, &mut state.cache)
    }

    /// Decode all latent frames in one pass (no chunking; differs slightly from `decode`
    /// through the GroupNorm statistics). Not what the official pipeline does.
    pub fn decode_unchunked(&self, z: &Tensor) -> Result<Tensor> {
        let mut state = DecodeState::new();
        self.decode_chunk(z, &mut state)
    }

    /// The DiT's latent from a posterior mean or sample `z` (B, C, T, h, w):
    /// `(z − latent_shift) · scaling_factor` (just the scaling without a shift).
    pub fn to_dit_latent(&self, z: &Tensor) -> Result<Tensor> {
        let z = match self.shift_for(z)? {
            Some(s) => z.broadcast_sub(&s)?,
            None => z.clone(),
        };
        z.affine(self.cfg.scaling_factor, 0.0)
    }

    /// Inverse of [`Self::to_dit_latent`]: a DiT latent (B, C, T, h, w) to the VAE latent `decode` takes.
    pub fn from_dit_latent(&self, z: &Tensor) -> Result<Tensor> {
        let u = z.affine(1.0 / self.cfg.scaling_factor, 0.0)?;
        match self.shift_for(z)? {
            Some(s) => u.broadcast_add(&s),
            None => Ok(u),
        }
    }

    /// Whether this VAE centres its latents (has a `latent_shift`).
    pub fn has_latent_shift(&self) -> bool {
        self.latent_shift.is_some()
    }

    /// The shift as (1, C, 1, h, w) in `z`'s dtype, checked against `z`'s latent size.
    fn shift_for(&self, z: &Tensor) -> Result<Option<Tensor>> {
        let Some(s) = &self.latent_shift else { return Ok(None) };
        let (c, h, w) = s.dims3()?;
        let d = z.dims();
        if d.len() != 5 || d[1] != c || d[3] != h || d[4] != w {
            candle_core::bail!(
                "this model's latent_shift is for {h}x{w} latents ({}x{} pixels) but got a latent of shape {d:?}: \
                 run it at its trained image size",
                h * 8,
                w * 8
            );
        }
        s.reshape((1, c, 1, h, w))?.to_dtype(z.dtype()).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ranges_match_diffusers() {
        assert_eq!(frame_chunks(13, 2), vec![0..3, 3..5, 5..7, 7..9, 9..11, 11..13]);
        assert_eq!(frame_chunks(5, 2), vec![0..3, 3..5]);
        assert_eq!(frame_chunks(1, 2), vec![0..1]);
        assert_eq!(frame_chunks(12, 2), vec![0..2, 2..4, 4..6, 6..8, 8..10, 10..12]);
        assert_eq!(frame_chunks(49, 8), vec![0..9, 9..17, 17..25, 25..33, 33..41, 41..49]);
        assert_eq!(frame_chunks(17, 8), vec![0..9, 9..17]);
        assert_eq!(frame_chunks(1, 8), vec![0..1]);
        assert_eq!(frame_chunks(5, 8), vec![0..5]);
        assert_eq!(frame_chunks(49, usize::MAX), vec![0..49]);
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let cfg = VaeConfig::from_json_str(r#"{"_class_name": "AutoencoderKLCogVideoX", "sample_height": 480, "scaling_factor": 0.7}"#)
            .unwrap();
        assert_eq!(cfg, VaeConfig::released());
        assert_eq!(cfg.block_out_channels, vec![128, 256, 256, 512]);
        assert_eq!(cfg.frames_for_latents(13), 49);
        let bad = VaeConfig::from_json_str(r#"{"norm_num_groups": 7}"#);
        assert!(bad.is_err());
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use candle_core::{DType, Device};

    /// User + system CPU time of this process (all threads), from /proc/self/stat.
    fn cpu_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let rest = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Fields after the command: state is index 0, utime 11, stime 12 (clock ticks, 100 Hz).
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Wall time of a 13-latent-frame decode (49 frames) at 64×64 and an encode of the same
    /// clip, for a few small configs (run with `--ignored --nocapture`).
    #[test]
    #[ignore]
    fn vae_decode_timing_13_latents_64px() -> Result<()> {
        let dev = Device::Cpu;
        let configs = [
            (
                "embedded candidate [8,16,32,32] L1 z16 g4",
                VaeConfig { block_out_channels: vec![8, 16, 32, 32], latent_channels: 16, layers_per_block: 1, norm_num_groups: 4, ..VaeConfig::default() },
            ),
            ("tiny [16,32,32,32] L1 z4", VaeConfig::tiny()),
            (
                "small [32,64,64,64] L1 z16",
                VaeConfig { block_out_channels: vec![32, 64, 64, 64], latent_channels: 16, layers_per_block: 1, norm_num_groups: 8, ..VaeConfig::default() },
            ),
            (
                "medium [64,128,128,128] L2 z16",
                VaeConfig { block_out_channels: vec![64, 128, 128, 128], latent_channels: 16, layers_per_block: 2, norm_num_groups: 32, ..VaeConfig::default() },
            ),
        ];
        let only = std::env::var("VAE_TIMING_ONLY").unwrap_or_default();
        for (name, cfg) in configs.into_iter().filter(|(n, _)| n.contains(only.as_str())) {
            let vae = AutoencoderKLCogVideoX::new(&cfg, VarBuilder::zeros(DType::F32, &dev))?;
            let z = Tensor::randn(0f32, 1., (1, cfg.latent_channels, 13, 8, 8), &dev)?;
            let (t0, c0) = (std::time::Instant::now(), cpu_seconds());
            let y = vae.decode(&z)?;
            let (dt, dc) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
            assert_eq!(y.dims(), &[1, 3, 49, 64, 64]);
            let x = Tensor::randn(0f32, 1., (1, 3, 49, 64, 64), &dev)?;
            let t0 = std::time::Instant::now();
            let (m, _) = vae.encode(&x)?;
            let de = t0.elapsed().as_secs_f64();
            assert_eq!(m.dims(), &[1, cfg.latent_channels, 13, 8, 8]);
            println!(
                "{name}: decode 13 latents -> 49x64x64 {:.0} ms (process CPU {:.0} ms), encode 49 frames {:.0} ms",
                dt * 1e3,
                dc * 1e3,
                de * 1e3
            );
        }
        Ok(())
    }
}
