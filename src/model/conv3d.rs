//! 3-D convolution for candle (which has none), and CogVideoX's causal Conv3d.
//!
//! The VAE keeps activations in PyTorch's layout `(B, C, T, H, W)`. A stride-1 (in time)
//! 3-D convolution is computed in one of these ways (all equal to a naive direct convolution,
//! see the unit tests):
//!
//! * [`Conv3dAlgo::Auto`] (default): on the CPU an explicit im2col written here — rows
//!   `(c, kt, kh, kw)` (the checkpoint's weight order, so the weight is a plain reshape), one
//!   column per output pixel of all frames, plus a row of ones that carries the bias — then a
//!   single candle matmul `(O, K+1) × (K+1, P)` whose result is already `(O, T, H, W)`. Large
//!   inputs are processed in tiles of output rows to bound memory. On other devices it uses
//!   `Folded`.
//! * tensor-op algorithms on a frame-major `(B, T, C, H, W)` view: [`Conv3dAlgo::PerTap`] (one
//!   conv2d per time tap, summed), [`Conv3dAlgo::Folded`] (the `kt` neighbouring frames stacked
//!   into the channel axis, one conv2d with `kt·C` inputs) and [`Conv3dAlgo::Im2col`] (im2col
//!   by stacking narrowed views, batched matmul).
//!
//! Measured on the 2-core dev machine (`conv3d_algo_timings`, C=O=32, 9 output frames of
//! 64×64, machine shared with other jobs so ±30 %): Auto 45–75 ms, PerTap 120–215 ms, Folded
//! 160–265 ms, Im2col ≈ 260 ms; C=O=128, 11 frames: Auto 650–850 ms, Folded ≈ 1000 ms. candle's
//! own conv2d spends most of its time in its per-element im2col, hence the hand-written one.
//!
//! Also here: [`CausalConv3d`] with its chunk-to-chunk [`ConvCache`], and the pointwise
//! (1×1×1) convolution.

use std::sync::OnceLock;

use candle_core::{DType, Device, Module, Result, Storage, Tensor, WithDType};
use candle_nn::VarBuilder;

/// How a stride-1 3-D convolution is computed. All run on any device (`Auto` falls back to
/// `Folded` off the CPU; the others are tensor ops only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv3dAlgo {
    /// CPU: the im2col + one matmul of this module; other devices: `Folded`.
    Auto,
    /// One conv2d per time tap, summed.
    PerTap,
    /// Time taps stacked into the channel axis, one conv2d with `kt·C` input channels.
    Folded,
    /// Explicit im2col (`kt·kh·kw·C` rows) and one batched matmul per frame.
    Im2col,
}

/// Weights of a stride-1 3-D convolution; the arrangement each algorithm needs is built on
/// first use and kept (so a model only holds the one it runs with besides the original).
#[derive(Debug, Clone)]
pub struct Conv3dWeights {
    /// `(O, C, kt, kh, kw)`, as stored in the checkpoint.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// `(O, kt·C, kh, kw)` with channel index `k·C + c`.
    folded: OnceLock<Tensor>,
    /// `kt` tensors `(O, C, kh, kw)`.
    taps: OnceLock<Vec<Tensor>>,
    /// `(O, kt·kh·kw·C)`, column index `((k·kh + i)·kw + j)·C + c`.
    im2col: OnceLock<Tensor>,
    /// `(O, C·kt·kh·kw + 1)`: the weight in checkpoint order with the bias as last column.
    gemm_w: OnceLock<Tensor>,
    pub kt: usize,
    pub kh: usize,
    pub kw: usize,
}

/// `OnceLock::get_or_try_init` (unstable) for a fallible tensor arrangement.
fn cached<T: Clone>(cell: &OnceLock<T>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    if let Some(v) = cell.get() {
        return Ok(v.clone());
    }
    let v = f()?;
    Ok(cell.get_or_init(|| v).clone())
}

impl Conv3dWeights {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (_, _, kt, kh, kw) = weight.dims5()?;
        let w = Self {
            weight,
            bias,
            folded: OnceLock::new(),
            taps: OnceLock::new(),
            im2col: OnceLock::new(),
            gemm_w: OnceLock::new(),
            kt,
            kh,
            kw,
        };
        if w.weight.device().is_cpu() {
            w.gemm_w()?; // built at load time rather than inside the first forward pass
        }
        Ok(w)
    }

    fn folded(&self) -> Result<Tensor> {
        cached(&self.folded, || {
            let (o, c, kt, kh, kw) = self.weight.dims5()?;
            self.weight.permute((0, 2, 1, 3, 4))?.reshape((o, kt * c, kh, kw))?.contiguous()
        })
    }

    fn taps(&self) -> Result<Vec<Tensor>> {
        cached(&self.taps, || {
            (0..self.kt).map(|k| self.weight.narrow(2, k, 1)?.squeeze(2)?.contiguous()).collect()
        })
    }

    fn im2col(&self) -> Result<Tensor> {
        cached(&self.im2col, || {
            let (o, c, kt, kh, kw) = self.weight.dims5()?;
            self.weight.permute((0, 2, 3, 4, 1))?.reshape((o, kt * kh * kw * c))?.contiguous()
        })
    }

    fn gemm_w(&self) -> Result<Tensor> {
        cached(&self.gemm_w, || {
            let (o, c, kt, kh, kw) = self.weight.dims5()?;
            let flat = self.weight.reshape((o, c * kt * kh * kw))?;
            let bias_col = match &self.bias {
                Some(b) => b.reshape((o, 1))?,
                None => Tensor::zeros((o, 1), self.weight.dtype(), self.weight.device())?,
            };
            Tensor::cat(&[&flat, &bias_col], 1)?.contiguous()
        })
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
    conv3d_frames_strided(x, w, pad_hw, 1, algo)
}

/// [`conv3d_frames`] with a spatial stride (not for [`Conv3dAlgo::Im2col`]).
pub fn conv3d_frames_strided(
    x: &Tensor,
    w: &Conv3dWeights,
    pad_hw: usize,
    stride: usize,
    algo: Conv3dAlgo,
) -> Result<Tensor> {
    let (b, tp, c, h, wd) = x.dims5()?;
    if c != w.in_channels() {
        candle_core::bail!("conv3d: input has {c} channels, kernel expects {}", w.in_channels())
    }
    if tp < w.kt {
        candle_core::bail!("conv3d: {tp} frames is fewer than the time kernel {}", w.kt)
    }
    let t_out = tp - w.kt + 1;
    let o = w.out_channels();
    let ho = (h + 2 * pad_hw - w.kh) / stride + 1;
    let wo = (wd + 2 * pad_hw - w.kw) / stride + 1;
    if stride != 1 && algo == Conv3dAlgo::Im2col {
        candle_core::bail!("conv3d: the tensor im2col variant has no stride")
    }
    let out = if w.kt == 1 {
        let xs = x.reshape((b * tp, c, h, wd))?;
        xs.conv2d(&w.taps()?[0], pad_hw, stride, 1, 1)?
    } else {
        match algo {
            Conv3dAlgo::PerTap => {
                let mut acc: Option<Tensor> = None;
                for (k, tap) in w.taps()?.iter().enumerate() {
                    let xs = x.narrow(1, k, t_out)?.reshape((b * t_out, c, h, wd))?;
                    let y = xs.conv2d(tap, pad_hw, stride, 1, 1)?;
                    acc = Some(match acc {
                        None => y,
                        Some(a) => (a + y)?,
                    });
                }
                acc.expect("kt >= 1")
            }
            Conv3dAlgo::Folded | Conv3dAlgo::Auto => {
                let parts = (0..w.kt)
                    .map(|k| x.narrow(1, k, t_out))
                    .collect::<Result<Vec<_>>>()?;
                let xs = Tensor::cat(&parts, 2)?.reshape((b * t_out, w.kt * c, h, wd))?;
                xs.conv2d(&w.folded()?, pad_hw, stride, 1, 1)?
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
                let wm = w.im2col()?.broadcast_as((b * t_out, o, kk * c))?;
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

/// 3-D convolution of `x: (B, C, Tp, H, W)` (PyTorch layout), time stride 1 and no time
/// padding (the caller pads), spatial stride `stride` and zero padding `pad_lo` before /
/// `pad_hi` after on both height and width. Returns `(B, O, Tp-kt+1, Ho, Wo)`.
pub fn conv3d_cthw(
    x: &Tensor,
    w: &Conv3dWeights,
    (pad_lo, pad_hi): (usize, usize),
    stride: usize,
    algo: Conv3dAlgo,
) -> Result<Tensor> {
    let (b, c, tp, h, wd) = x.dims5()?;
    if c != w.in_channels() {
        candle_core::bail!("conv3d: input has {c} channels, kernel expects {}", w.in_channels())
    }
    if tp < w.kt || h + pad_lo + pad_hi < w.kh || wd + pad_lo + pad_hi < w.kw || stride == 0 {
        candle_core::bail!("conv3d: input {:?} too small for kernel {:?}", x.dims(), w.weight.dims())
    }
    if algo == Conv3dAlgo::Auto && x.device().is_cpu() {
        return conv3d_cpu_im2col(x, w, (pad_lo, pad_hi), stride);
    }
    // Tensor-op algorithms on the frame-major view.
    let (xf, pad) = if pad_lo == pad_hi {
        (x.permute((0, 2, 1, 3, 4))?.contiguous()?, pad_lo)
    } else {
        let xp = x.pad_with_zeros(3, pad_lo, pad_hi)?.pad_with_zeros(4, pad_lo, pad_hi)?;
        (xp.permute((0, 2, 1, 3, 4))?.contiguous()?, 0)
    };
    let _ = (b, tp);
    conv3d_frames_strided(&xf, w, pad, stride, algo)?.permute((0, 2, 1, 3, 4))?.contiguous()
}

/// Output rows `(t, h)` per im2col tile are chosen so a tile holds about this many elements.
const IM2COL_TILE_ELEMS: usize = 4 << 20;

fn conv3d_cpu_im2col(x: &Tensor, w: &Conv3dWeights, pad: (usize, usize), stride: usize) -> Result<Tensor> {
    match x.dtype() {
        DType::F32 => conv3d_cpu_im2col_t::<f32>(x, w, pad, stride),
        DType::F64 => conv3d_cpu_im2col_t::<f64>(x, w, pad, stride),
        DType::BF16 => conv3d_cpu_im2col_t::<half::bf16>(x, w, pad, stride),
        DType::F16 => conv3d_cpu_im2col_t::<half::f16>(x, w, pad, stride),
        d => candle_core::bail!("conv3d: unsupported dtype {d:?}"),
    }
}

/// Geometry of one im2col: input `(C, Tp, H, W)`, kernel, output `(To, Ho, Wo)`.
#[derive(Clone, Copy)]
struct Geom {
    c: usize,
    tp: usize,
    h: usize,
    w: usize,
    kt: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    stride: usize,
    pad: usize,
}

/// Fill `out` (rows `row0..row0+out.len()/pt` of the `(K+1, pt)` column matrix) for the output
/// rows `q0..q0+pt/wo` (flattened `(t, h)`). Row `K` is all ones (the bias row).
fn im2col_rows<T: WithDType>(x: &[T], g: Geom, q0: usize, pt: usize, row0: usize, out: &mut [T]) {
    let k_rows = g.c * g.kt * g.kh * g.kw;
    let nq = pt / g.wo;
    for (ri, dst) in out.chunks_mut(pt).enumerate() {
        let r = row0 + ri;
        if r == k_rows {
            dst.fill(T::from_f64(1.0));
            continue;
        }
        let j = r % g.kw;
        let i = (r / g.kw) % g.kh;
        let a = (r / (g.kw * g.kh)) % g.kt;
        let ci = r / (g.kw * g.kh * g.kt);
        for qi in 0..nq {
            let q = q0 + qi;
            let (to, hoi) = (q / g.ho, q % g.ho);
            let seg = &mut dst[qi * g.wo..(qi + 1) * g.wo];
            let h_in = (hoi * g.stride + i) as isize - g.pad as isize;
            if h_in < 0 || h_in >= g.h as isize {
                seg.fill(T::zero());
                continue;
            }
            let base = ((ci * g.tp + to + a) * g.h + h_in as usize) * g.w;
            let src = &x[base..base + g.w];
            if g.stride == 1 {
                // w_in = wo + j - pad, valid for wo in [lo, hi).
                let lo = g.pad.saturating_sub(j).min(g.wo);
                let hi = (g.w + g.pad).saturating_sub(j).min(g.wo).max(lo);
                seg[..lo].fill(T::zero());
                seg[hi..].fill(T::zero());
                let s0 = lo + j - g.pad;
                seg[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
            } else {
                for (woi, v) in seg.iter_mut().enumerate() {
                    let w_in = (woi * g.stride + j) as isize - g.pad as isize;
                    *v = if w_in < 0 || w_in >= g.w as isize { T::zero() } else { src[w_in as usize] };
                }
            }
        }
    }
}

fn conv3d_cpu_im2col_t<T: WithDType>(
    x: &Tensor,
    w: &Conv3dWeights,
    (pad_lo, pad_hi): (usize, usize),
    stride: usize,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    let (b, c, tp, h, wd) = x.dims5()?;
    let o = w.out_channels();
    let to = tp - w.kt + 1;
    let ho = (h + pad_lo + pad_hi - w.kh) / stride + 1;
    let wo = (wd + pad_lo + pad_hi - w.kw) / stride + 1;
    let g = Geom { c, tp, h, w: wd, kt: w.kt, kh: w.kh, kw: w.kw, ho, wo, stride, pad: pad_lo };
    let rows = c * w.kt * w.kh * w.kw + 1;
    let nq = to * ho;
    // At least ~2048 columns per tile so the matmul stays efficient for wide kernels.
    let q_per_tile = (IM2COL_TILE_ELEMS / (rows * wo)).max(2048usize.div_ceil(wo)).clamp(1, nq);
    let threads = candle_core::utils::get_num_threads().max(1);
    let gemm_w = w.gemm_w()?;
    let gemm_w = if gemm_w.dtype() == x.dtype() { gemm_w } else { gemm_w.to_dtype(x.dtype())? };
    let (storage, layout) = x.storage_and_layout();
    let data: &[T] = match &*storage {
        Storage::Cpu(s) => &s.as_slice::<T>()?[layout.start_offset()..],
        _ => candle_core::bail!("conv3d_cpu_im2col on a non-CPU tensor"),
    };
    let per_b = c * tp * h * wd;
    let mut outs = Vec::with_capacity(b);
    for bi in 0..b {
        let xb = &data[bi * per_b..(bi + 1) * per_b];
        let mut tiles = Vec::new();
        let mut q0 = 0;
        while q0 < nq {
            let nqt = q_per_tile.min(nq - q0);
            let pt = nqt * wo;
            let n = rows * pt;
            let mut cols: Vec<T> = Vec::with_capacity(n);
            // SAFETY: `im2col_rows` writes every element of `cols` (each row either filled
            // with ones, or per output row a zero fill and/or a copy covering all `wo` slots)
            // before anything reads it; `T` is a plain `Copy` float type without drop glue.
            #[allow(clippy::uninit_vec)]
            unsafe {
                cols.set_len(n)
            };
            let rows_per_thread = rows.div_ceil(threads);
            if threads > 1 && rows * pt > 1 << 16 {
                std::thread::scope(|s| {
                    for (ti, chunk) in cols.chunks_mut(rows_per_thread * pt).enumerate() {
                        s.spawn(move || im2col_rows(xb, g, q0, pt, ti * rows_per_thread, chunk));
                    }
                });
            } else {
                im2col_rows(xb, g, q0, pt, 0, &mut cols);
            }
            let cols = Tensor::from_vec(cols, (rows, pt), &Device::Cpu)?;
            tiles.push(gemm_w.matmul(&cols)?);
            q0 += nqt;
        }
        let y = if tiles.len() == 1 { tiles.pop().expect("one tile") } else { Tensor::cat(&tiles, 1)? };
        outs.push(y.reshape((o, to, ho, wo))?);
    }
    drop(storage);
    if b == 1 {
        outs.pop().expect("one batch").unsqueeze(0)
    } else {
        Tensor::stack(&outs, 0)
    }
}

/// Stride-1 3-D convolution on the PyTorch layout `x: (B, C, T, H, W)`, weight
/// `(O, C, kt, kh, kw)`, zero padding `(pt, p, p)`; returns `(B, O, T', H', W')`.
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
    let x = if pt > 0 { x.pad_with_zeros(2, pt, pt)? } else { x.clone() };
    conv3d_cthw(&x, &w, (ph, ph), 1, algo)
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
        Ok(Self { w: Conv3dWeights::new(weight, Some(bias))?, pad_hw: (k - 1) / 2, algo: Conv3dAlgo::Auto })
    }

    /// `x: (B, C, T, H, W)`. With a cache, the time padding comes from (and the new last
    /// frames go to) the cache's next slot.
    pub fn forward(&self, x: &Tensor, cache: Option<&mut ConvCache>) -> Result<Tensor> {
        let kt = self.w.kt;
        let pad = (self.pad_hw, self.pad_hw);
        if kt == 1 {
            return conv3d_cthw(x, &self.w, pad, 1, self.algo);
        }
        let (slot, prev) = match cache {
            Some(c) => {
                let i = c.next_slot();
                let prev = c.slots[i].take();
                (Some((c, i)), prev)
            }
            None => (None, None),
        };
        let front = match prev {
            Some(p) => p,
            None => {
                let first = x.narrow(2, 0, 1)?;
                Tensor::cat(&vec![first; kt - 1], 2)?
            }
        };
        let xp = Tensor::cat(&[&front, x], 2)?;
        if let Some((c, i)) = slot {
            let tp = xp.dim(2)?;
            c.slots[i] = Some(xp.narrow(2, tp - (kt - 1), kt - 1)?.contiguous()?);
        }
        conv3d_cthw(&xp, &self.w, pad, 1, self.algo)
    }
}

/// A 1×1×1 convolution (`CogVideoXSafeConv3d(kernel_size=1)`), weight `(O, C, 1, 1, 1)`,
/// as a matmul over `(B, C, T·H·W)`.
#[derive(Debug, Clone)]
pub struct PointwiseConv3d {
    w: Tensor,
    b: Tensor,
}

impl PointwiseConv3d {
    pub fn new(in_c: usize, out_c: usize, vb: VarBuilder) -> Result<Self> {
        let w = vb.get((out_c, in_c, 1, 1, 1), "weight")?.reshape((out_c, in_c))?;
        let b = vb.get(out_c, "bias")?;
        Ok(Self { w, b })
    }

    /// Stack several pointwise convolutions over the same input into one (outputs concatenated).
    pub fn concat(convs: &[&PointwiseConv3d]) -> Result<Self> {
        let w = Tensor::cat(&convs.iter().map(|c| &c.w).collect::<Vec<_>>(), 0)?;
        let b = Tensor::cat(&convs.iter().map(|c| &c.b).collect::<Vec<_>>(), 0)?;
        Ok(Self { w, b })
    }
}

impl Module for PointwiseConv3d {
    /// `x: (B, C, T, H, W)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t, h, w) = x.dims5()?;
        let o = self.w.dim(0)?;
        let x = x.reshape((b, c, t * h * w))?;
        let y = if b == 1 {
            self.w.matmul(&x.squeeze(0)?)?.unsqueeze(0)?
        } else {
            self.w.broadcast_left(b)?.matmul(&x)?
        };
        y.broadcast_add(&self.b.reshape((1, o, 1))?)?.reshape((b, o, t, h, w))
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
            for algo in [Conv3dAlgo::Auto, Conv3dAlgo::PerTap, Conv3dAlgo::Folded, Conv3dAlgo::Im2col] {
                let got = conv3d(&x, &k, Some(&bias), pad, algo)?;
                assert_eq!(got.dims5()?, shape, "{algo:?}");
                let d = max_abs_diff(&got.flatten_all()?.to_vec1()?, &want);
                assert!(d < 1e-4, "{algo:?} {:?}: max |diff| {d}", (b, c, t, h, w, o, kt, kh, kw));
            }
        }
        Ok(())
    }

    /// Strided, asymmetrically padded (the down-sampler's pad right/bottom + stride 2) and
    /// half-precision inputs: the CPU im2col agrees with candle's conv2d path.
    #[test]
    fn conv3d_strided_asymmetric_and_bf16_agree() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 6, 3, 9, 8), &dev)?;
        let w = Conv3dWeights::new(
            Tensor::randn(0f32, 1., (5, 6, 1, 3, 3), &dev)?,
            Some(Tensor::randn(0f32, 1., 5, &dev)?),
        )?;
        let a = conv3d_cthw(&x, &w, (0, 1), 2, Conv3dAlgo::Auto)?;
        let b = conv3d_cthw(&x, &w, (0, 1), 2, Conv3dAlgo::Folded)?;
        assert_eq!(a.dims(), &[2, 5, 3, 4, 4]);
        let d = (&a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-4, "strided: {d}");
        let xb = x.to_dtype(DType::BF16)?;
        let c = conv3d_cthw(&xb, &w, (0, 1), 2, Conv3dAlgo::Auto)?.to_dtype(DType::F32)?;
        let rel = ((&c - &b)?.sqr()?.sum_all()?.sqrt()? / b.sqr()?.sum_all()?.sqrt()?)?.to_scalar::<f32>()?;
        assert!(rel < 2e-2, "bf16 rel err {rel}");
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
            algo: Conv3dAlgo::Auto,
        };
        let x = Tensor::randn(0f32, 1., (1, c, t, h, w), &dev)?;
        let first = x.narrow(2, 0, 1)?;
        let padded = Tensor::cat(&[&first, &first, &x], 2)?;
        let want = conv3d(&padded, &weight, Some(&bias), (0, 1, 1), Conv3dAlgo::PerTap)?;
        let whole = conv.forward(&x, None)?;
        let d = (&whole - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-4, "causal pad: {d}");
        let mut cache = ConvCache::new();
        cache.begin();
        let a = conv.forward(&x.narrow(2, 0, 3)?, Some(&mut cache))?;
        cache.begin();
        let b = conv.forward(&x.narrow(2, 3, 4)?, Some(&mut cache))?;
        let chunked = Tensor::cat(&[&a, &b], 2)?;
        let d = (&chunked - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-4, "chunked with cache: {d}");
        Ok(())
    }

    /// Timing of the three algorithms on VAE-like sizes (run with `--ignored --nocapture`).
    #[test]
    #[ignore]
    fn conv3d_algo_timings() -> Result<()> {
        let dev = Device::Cpu;
        for &(c, o, t, hw) in &[(16usize, 8usize, 10usize, 64usize), (8, 8, 10, 64), (32, 32, 8, 64), (32, 16, 10, 32), (64, 64, 5, 32), (128, 128, 11, 64)] {
            let x = Tensor::randn(0f32, 1., (1, t + 2, c, hw, hw), &dev)?;
            let w = Conv3dWeights::new(Tensor::randn(0f32, 0.1, (o, c, 3, 3, 3), &dev)?, None)?;
            let x = x.permute((0, 2, 1, 3, 4))?.contiguous()?; // (B, C, T, H, W)
            for algo in [Conv3dAlgo::Auto, Conv3dAlgo::PerTap, Conv3dAlgo::Folded, Conv3dAlgo::Im2col] {
                let _ = conv3d_cthw(&x, &w, (1, 1), 1, algo)?;
                let n = 3;
                let t0 = std::time::Instant::now();
                for _ in 0..n {
                    let _ = conv3d_cthw(&x, &w, (1, 1), 1, algo)?;
                }
                println!("c{c} o{o} t{t} {hw}x{hw} {algo:?}: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
            }
        }
        Ok(())
    }
}
