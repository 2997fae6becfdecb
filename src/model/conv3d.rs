//! 3-D convolution for candle (which has none), and CogVideoX's causal Conv3d.
//!
//! Activations are kept **frame-major**, `(B, T, C, H, W)`, inside the VAE: then every frame
//! is a plain `(C, H, W)` image, a batch of frames `(B·T, C, H, W)` is a free reshape, and a
//! 3-D convolution with a `kt×kh×kw` kernel is a 2-D convolution whose input channels are the
//! `kt` neighbouring frames stacked ("folded"): `out[t] = conv2d(cat(x[t..t+kt], dim=C), W')`
//! with `W'[o, k·C + c] = W[o, c, k]`. Only stride 1 is needed by CogVideoX.
//!
//! Three algorithms compute the same thing (the unit tests compare each with a naive direct
//! convolution); [`Conv3dAlgo::Folded`] was the fastest on a 2-core CPU at VAE-like sizes (see
//! `conv3d_algo_timings`), so it is the default.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// How a stride-1 3-D convolution is computed. All work on any device (tensor ops only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv3dAlgo {
    /// One conv2d per time tap, summed.
    PerTap,
    /// Time taps stacked into the channel axis, one conv2d with `kt·C` input channels.
    Folded,
    /// Explicit im2col (`kt·kh·kw·C` rows) and one batched matmul per frame.
    Im2col,
}

/// Weights of a stride-1 3-D convolution, pre-arranged for each algorithm.
#[derive(Debug, Clone)]
pub struct Conv3dWeights {
    /// `(O, C, kt, kh, kw)`, as stored in the checkpoint.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// `(O, kt·C, kh, kw)` with channel index `k·C + c`.
    folded: Tensor,
    /// `kt` tensors `(O, C, kh, kw)`.
    taps: Vec<Tensor>,
    /// `(O, kt·kh·kw·C)`, column index `((k·kh + i)·kw + j)·C + c`.
    im2col: Tensor,
    pub kt: usize,
    pub kh: usize,
    pub kw: usize,
}

impl Conv3dWeights {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (o, c, kt, kh, kw) = weight.dims5()?;
        let folded = weight
            .permute((0, 2, 1, 3, 4))?
            .reshape((o, kt * c, kh, kw))?
            .contiguous()?;
        let taps = (0..kt)
            .map(|k| weight.narrow(2, k, 1)?.squeeze(2)?.contiguous())
            .collect::<Result<Vec<_>>>()?;
        let im2col = weight
            .permute((0, 2, 3, 4, 1))?
            .reshape((o, kt * kh * kw * c))?
            .contiguous()?;
        Ok(Self { weight, bias, folded, taps, im2col, kt, kh, kw })
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn in_channels(&self) -> usize {
        self.weight.dims()[1]
    }
}

/// Stride-1 3-D convolution of a frame-major tensor `x: (B, Tp, C, H, W)`: no time padding
/// (the caller pads), `pad_hw` zeros on each spatial side. Returns `(B, Tp-kt+1, O, Ho, Wo)`.
pub fn conv3d_frames(x: &Tensor, w: &Conv3dWeights, pad_hw: usize, algo: Conv3dAlgo) -> Result<Tensor> {
    let (b, tp, c, h, wd) = x.dims5()?;
    if c != w.in_channels() {
        candle_core::bail!("conv3d: input has {c} channels, kernel expects {}", w.in_channels())
    }
    if tp < w.kt {
        candle_core::bail!("conv3d: {tp} frames is fewer than the time kernel {}", w.kt)
    }
    let t_out = tp - w.kt + 1;
    let o = w.out_channels();
    let ho = h + 2 * pad_hw + 1 - w.kh;
    let wo = wd + 2 * pad_hw + 1 - w.kw;
    let out = if w.kt == 1 {
        let xs = x.reshape((b * tp, c, h, wd))?;
        xs.conv2d(&w.taps[0], pad_hw, 1, 1, 1)?
    } else {
        match algo {
            Conv3dAlgo::PerTap => {
                let mut acc: Option<Tensor> = None;
                for (k, tap) in w.taps.iter().enumerate() {
                    let xs = x.narrow(1, k, t_out)?.reshape((b * t_out, c, h, wd))?;
                    let y = xs.conv2d(tap, pad_hw, 1, 1, 1)?;
                    acc = Some(match acc {
                        None => y,
                        Some(a) => (a + y)?,
                    });
                }
                acc.expect("kt >= 1")
            }
            Conv3dAlgo::Folded => {
                let parts = (0..w.kt)
                    .map(|k| x.narrow(1, k, t_out))
                    .collect::<Result<Vec<_>>>()?;
                let xs = Tensor::cat(&parts, 2)?.reshape((b * t_out, w.kt * c, h, wd))?;
                xs.conv2d(&w.folded, pad_hw, 1, 1, 1)?
            }
            Conv3dAlgo::Im2col => {
                let xp = if pad_hw > 0 {
                    x.pad_with_zeros(3, pad_hw, pad_hw)?.pad_with_zeros(4, pad_hw, pad_hw)?
                } else {
                    x.clone()
                };
                let mut parts = Vec::with_capacity(w.kt * w.kh * w.kw);
                for k in 0..w.kt {
                    let xk = xp.narrow(1, k, t_out)?;
                    for i in 0..w.kh {
                        let xi = xk.narrow(3, i, ho)?;
                        for j in 0..w.kw {
                            parts.push(xi.narrow(4, j, wo)?);
                        }
                    }
                }
                let kk = parts.len();
                let cols = Tensor::stack(&parts, 2)?.reshape((b * t_out, kk * c, ho * wo))?;
                let wm = w.im2col.broadcast_as((b * t_out, o, kk * c))?;
                wm.matmul(&cols)?
            }
        }
    };
    let out = out.reshape((b, t_out, o, ho, wo))?;
    match &w.bias {
        Some(bias) => out.broadcast_add(&bias.reshape((1, 1, o, 1, 1))?),
        None => Ok(out),
    }
}

/// Stride-1 3-D convolution on the PyTorch layout `x: (B, C, T, H, W)`, weight
/// `(O, C, kt, kh, kw)`, zero padding `(pt, ph, pw)`; returns `(B, O, T', H', W')`.
/// Convenience wrapper (and the thing the unit test checks against a naive loop).
pub fn conv3d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    padding: (usize, usize, usize),
    algo: Conv3dAlgo,
) -> Result<Tensor> {
    let (pt, ph, pw) = padding;
    if ph != pw {
        candle_core::bail!("conv3d: only equal height/width padding is supported, got {ph}/{pw}")
    }
    let w = Conv3dWeights::new(weight.clone(), bias.cloned())?;
    let mut xf = x.permute((0, 2, 1, 3, 4))?.contiguous()?;
    if pt > 0 {
        xf = xf.pad_with_zeros(1, pt, pt)?;
    }
    conv3d_frames(&xf, &w, ph, algo)?.permute((0, 2, 1, 3, 4))?.contiguous()
}

/// Per-module state carried between chunks: the last `kt-1` (time-padded) input frames of
/// every causal convolution, in call order. One forward pass = [`ConvCache::begin`] then the
/// convolutions in their fixed order, each taking and replacing its slot.
#[derive(Debug, Default, Clone)]
pub struct ConvCache {
    slots: Vec<Option<Tensor>>,
    pos: usize,
}

impl ConvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a new forward pass over the same modules.
    pub fn begin(&mut self) {
        self.pos = 0;
    }

    /// True if no chunk has been processed yet.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| s.is_none())
    }

    fn next_slot(&mut self) -> usize {
        let i = self.pos;
        self.pos += 1;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        i
    }
}

/// diffusers `CogVideoXCausalConv3d` (pad_mode "constant"/"first", stride 1): the time axis is
/// left-padded with the cached last `kt-1` frames of the previous chunk, or, for the first
/// chunk, with the first frame repeated `kt-1` times; height/width are zero-padded by
/// `(k-1)/2`. Weights: `{prefix}.conv.weight (O, C, kt, kh, kw)`, `{prefix}.conv.bias`.
#[derive(Debug, Clone)]
pub struct CausalConv3d {
    pub w: Conv3dWeights,
    pub pad_hw: usize,
    pub algo: Conv3dAlgo,
}

impl CausalConv3d {
    pub fn new(in_c: usize, out_c: usize, k: usize, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("conv");
        let weight = vb.get((out_c, in_c, k, k, k), "weight")?;
        let bias = vb.get(out_c, "bias")?;
        Ok(Self { w: Conv3dWeights::new(weight, Some(bias))?, pad_hw: (k - 1) / 2, algo: Conv3dAlgo::Folded })
    }

    /// `x: (B, T, C, H, W)` frame-major. With a cache, the time padding comes from (and the
    /// new last frames go to) the cache's next slot.
    pub fn forward(&self, x: &Tensor, cache: Option<&mut ConvCache>) -> Result<Tensor> {
        let kt = self.w.kt;
        if kt == 1 {
            return conv3d_frames(x, &self.w, self.pad_hw, self.algo);
        }
        let (slot, prev) = match cache {
            Some(c) => {
                let i = c.next_slot();
                let prev = c.slots[i].take();
                (Some((c, i)), prev)
            }
            None => (None, None),
        };
        let pad = match prev {
            Some(p) => p,
            None => {
                let first = x.narrow(1, 0, 1)?;
                Tensor::cat(&vec![first; kt - 1], 1)?
            }
        };
        let xp = Tensor::cat(&[&pad, x], 1)?;
        if let Some((c, i)) = slot {
            let tp = xp.dim(1)?;
            c.slots[i] = Some(xp.narrow(1, tp - (kt - 1), kt - 1)?.contiguous()?);
        }
        conv3d_frames(&xp, &self.w, self.pad_hw, self.algo)
    }
}

/// A 1×1×1 convolution (`CogVideoXSafeConv3d(kernel_size=1)`), weight `(O, C, 1, 1, 1)`.
#[derive(Debug, Clone)]
pub struct PointwiseConv3d {
    w: Tensor,
    b: Option<Tensor>,
}

impl PointwiseConv3d {
    pub fn new(in_c: usize, out_c: usize, vb: VarBuilder) -> Result<Self> {
        let w = vb.get((out_c, in_c, 1, 1, 1), "weight")?.reshape((out_c, in_c, 1, 1))?;
        let b = Some(vb.get(out_c, "bias")?);
        Ok(Self { w, b })
    }

    /// Stack several pointwise convolutions over the same input into one (outputs concatenated).
    pub fn concat(convs: &[&PointwiseConv3d]) -> Result<Self> {
        let w = Tensor::cat(&convs.iter().map(|c| &c.w).collect::<Vec<_>>(), 0)?;
        let b = Tensor::cat(&convs.iter().map(|c| c.b.clone().expect("bias")).collect::<Vec<_>>(), 0)?;
        Ok(Self { w, b: Some(b) })
    }
}

impl Module for PointwiseConv3d {
    /// `x: (B, T, C, H, W)` frame-major.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c, h, w) = x.dims5()?;
        let o = self.w.dim(0)?;
        let y = x.reshape((b * t, c, h, w))?.conv2d(&self.w, 0, 1, 1, 1)?.reshape((b, t, o, h, w))?;
        match &self.b {
            Some(bias) => y.broadcast_add(&bias.reshape((1, 1, o, 1, 1))?),
            None => Ok(y),
        }
    }
}

/// GroupNorm over a frame-major `(B, T, C, H, W)` tensor, statistics per (batch, group) over
/// `(C/G, T, H, W)`, i.e. exactly `torch.nn.GroupNorm` on the `(B, C, T, H, W)` layout.
/// Computed in f32 for half-precision inputs.
#[derive(Debug, Clone)]
pub struct GroupNorm3d {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl GroupNorm3d {
    pub fn new(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            candle_core::bail!("GroupNorm: {groups} groups do not divide {channels} channels ({})", vb.prefix())
        }
        let weight = vb.get(channels, "weight")?;
        let bias = vb.get(channels, "bias")?;
        Ok(Self { weight, bias, groups, eps })
    }
}

impl Module for GroupNorm3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c, h, w) = x.dims5()?;
        let g = self.groups;
        let dtype = x.dtype();
        let xf = match dtype {
            DType::F16 | DType::BF16 => x.to_dtype(DType::F32)?,
            _ => x.clone(),
        };
        let n = (t * (c / g) * h * w) as f64;
        let xg = xf.reshape((b, t, g, (c / g) * h * w))?;
        let mean = (xg.sum_keepdim(D::Minus1)?.sum_keepdim(1)? / n)?;
        let xc = xg.broadcast_sub(&mean)?;
        let var = (xc.sqr()?.sum_keepdim(D::Minus1)?.sum_keepdim(1)? / n)?;
        let inv = (var + self.eps)?.sqrt()?.recip()?;
        let y = xc.broadcast_mul(&inv)?.reshape((b, t, c, h, w))?.to_dtype(dtype)?;
        y.broadcast_mul(&self.weight.reshape((1, 1, c, 1, 1))?)?
            .broadcast_add(&self.bias.reshape((1, 1, c, 1, 1))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Plain direct 3-D convolution, stride 1, zero padding, PyTorch layout.
    #[allow(clippy::too_many_arguments)]
    fn naive_conv3d(
        x: &[f32],
        (b, c, t, h, w): (usize, usize, usize, usize, usize),
        k: &[f32],
        (o, kt, kh, kw): (usize, usize, usize, usize),
        bias: &[f32],
        (pt, ph, pw): (usize, usize, usize),
    ) -> (Vec<f32>, (usize, usize, usize, usize, usize)) {
        let to = t + 2 * pt + 1 - kt;
        let ho = h + 2 * ph + 1 - kh;
        let wo = w + 2 * pw + 1 - kw;
        let mut out = vec![0f32; b * o * to * ho * wo];
        for bi in 0..b {
            for oi in 0..o {
                for ti in 0..to {
                    for hi in 0..ho {
                        for wi in 0..wo {
                            let mut s = bias[oi] as f64;
                            for ci in 0..c {
                                for a in 0..kt {
                                    for i in 0..kh {
                                        for j in 0..kw {
                                            let (tt, hh, ww) = (ti + a, hi + i, wi + j);
                                            if tt < pt || hh < ph || ww < pw {
                                                continue;
                                            }
                                            let (tt, hh, ww) = (tt - pt, hh - ph, ww - pw);
                                            if tt >= t || hh >= h || ww >= w {
                                                continue;
                                            }
                                            let xv = x[(((bi * c + ci) * t + tt) * h + hh) * w + ww];
                                            let kv = k[(((oi * c + ci) * kt + a) * kh + i) * kw + j];
                                            s += (xv * kv) as f64;
                                        }
                                    }
                                }
                            }
                            out[(((bi * o + oi) * to + ti) * ho + hi) * wo + wi] = s as f32;
                        }
                    }
                }
            }
        }
        (out, (b, o, to, ho, wo))
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
    }

    #[test]
    fn conv3d_matches_naive_direct_convolution() -> Result<()> {
        let dev = Device::Cpu;
        for &(b, c, t, h, w, o, kt, kh, kw, pad) in &[
            (2usize, 5usize, 6usize, 7usize, 9usize, 4usize, 3usize, 3usize, 3usize, (1usize, 1usize, 1usize)),
            (1, 3, 4, 6, 6, 6, 3, 3, 3, (0, 1, 1)),
            (1, 4, 5, 5, 4, 3, 2, 1, 1, (0, 0, 0)),
            (1, 2, 3, 5, 5, 2, 1, 3, 3, (0, 0, 0)),
        ] {
            let x = Tensor::randn(0f32, 1., (b, c, t, h, w), &dev)?;
            let k = Tensor::randn(0f32, 1., (o, c, kt, kh, kw), &dev)?;
            let bias = Tensor::randn(0f32, 1., o, &dev)?;
            let (want, shape) = naive_conv3d(
                &x.flatten_all()?.to_vec1()?,
                (b, c, t, h, w),
                &k.flatten_all()?.to_vec1()?,
                (o, kt, kh, kw),
                &bias.to_vec1()?,
                pad,
            );
            for algo in [Conv3dAlgo::PerTap, Conv3dAlgo::Folded, Conv3dAlgo::Im2col] {
                let got = conv3d(&x, &k, Some(&bias), pad, algo)?;
                assert_eq!(got.dims5()?, shape, "{algo:?}");
                let d = max_abs_diff(&got.flatten_all()?.to_vec1()?, &want);
                assert!(d < 1e-4, "{algo:?} {:?}: max |diff| {d}", (b, c, t, h, w, o, kt, kh, kw));
            }
        }
        Ok(())
    }

    /// The causal conv equals a plain conv3d on the input with the first frame repeated
    /// `kt-1` times in front; and two chunks with a cache equal one pass over the whole clip.
    #[test]
    fn causal_conv3d_first_frame_padding_and_cache() -> Result<()> {
        let dev = Device::Cpu;
        let (c, o, t, h, w) = (3, 4, 7, 5, 6);
        let weight = Tensor::randn(0f32, 1., (o, c, 3, 3, 3), &dev)?;
        let bias = Tensor::randn(0f32, 1., o, &dev)?;
        let conv = CausalConv3d {
            w: Conv3dWeights::new(weight.clone(), Some(bias.clone()))?,
            pad_hw: 1,
            algo: Conv3dAlgo::Folded,
        };
        let x = Tensor::randn(0f32, 1., (1, t, c, h, w), &dev)?; // frame-major
        let first = x.narrow(1, 0, 1)?;
        let padded = Tensor::cat(&[&first, &first, &x], 1)?;
        let want = conv3d(&padded.permute((0, 2, 1, 3, 4))?, &weight, Some(&bias), (0, 1, 1), Conv3dAlgo::PerTap)?
            .permute((0, 2, 1, 3, 4))?;
        let whole = conv.forward(&x, None)?;
        let d = (&whole - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-4, "causal pad: {d}");
        let mut cache = ConvCache::new();
        cache.begin();
        let a = conv.forward(&x.narrow(1, 0, 3)?, Some(&mut cache))?;
        cache.begin();
        let b = conv.forward(&x.narrow(1, 3, 4)?, Some(&mut cache))?;
        let chunked = Tensor::cat(&[&a, &b], 1)?;
        let d = (&chunked - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-4, "chunked with cache: {d}");
        Ok(())
    }

    /// Timing of the three algorithms on VAE-like sizes (run with `--ignored --nocapture`).
    #[test]
    #[ignore]
    fn conv3d_algo_timings() -> Result<()> {
        let dev = Device::Cpu;
        for &(c, o, t, hw) in &[(32usize, 32usize, 9usize, 64usize), (64, 64, 5, 32), (64, 64, 3, 16), (128, 128, 11, 64)] {
            let x = Tensor::randn(0f32, 1., (1, t + 2, c, hw, hw), &dev)?;
            let w = Conv3dWeights::new(Tensor::randn(0f32, 0.1, (o, c, 3, 3, 3), &dev)?, None)?;
            for algo in [Conv3dAlgo::PerTap, Conv3dAlgo::Folded, Conv3dAlgo::Im2col] {
                let _ = conv3d_frames(&x, &w, 1, algo)?;
                let n = 3;
                let t0 = std::time::Instant::now();
                for _ in 0..n {
                    let _ = conv3d_frames(&x, &w, 1, algo)?;
                }
                println!("c{c} o{o} t{t} {hw}x{hw} {algo:?}: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
            }
        }
        Ok(())
    }
}
