//! The VideoVLA diffusion transformer (`DiffusionTransformer_withact` of the official code).
//!
//! Sequence layout `[text L | video T·h·w | action A]`. Weight names are the SAT names of the
//! released checkpoint with `model.diffusion_model.` stripped, so a converted checkpoint loads
//! with `Dit::new(cfg, vb)` unchanged. Every step below cites the official behaviour
//! (see `../shared/docs/videovla-spec.md` §3 and `training/videovla_ref/dit.py`, the PyTorch
//! reference this is tested against).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// Architecture of the DiT. Field names are the JSON keys of `config.json` (`"dit"` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DitConfig {
    pub num_layers: usize,
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub time_embed_dim: usize,
    /// Channels fed to the patch embedding: noisy latent + image-conditioning latent.
    pub in_channels: usize,
    /// Latent channels predicted.
    pub out_channels: usize,
    pub patch_size: usize,
    /// Width of the text encoder output (4096 for T5-XXL).
    pub text_hidden_size: usize,
    /// Number of text tokens (226 as released).
    pub text_length: usize,
    /// Latent frames the positional tables are built for (13 = 49 video frames).
    pub latent_frames: usize,
    /// Latent height/width in latent pixels (token grid = latent / patch).
    pub latent_height: usize,
    pub latent_width: usize,
    pub action_length: usize,
    pub action_dim: usize,
    pub num_robot_ids: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_ln_eps")]
    pub layernorm_eps: f64,
    #[serde(default = "default_small_eps")]
    pub qk_layernorm_eps: f64,
    #[serde(default = "default_small_eps")]
    pub final_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// `transformer.position_embeddings` exists in the checkpoint but is never used.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
}

fn default_ln_eps() -> f64 {
    1e-5
}
fn default_small_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10000.0
}
fn default_max_pos() -> usize {
    64
}

impl DitConfig {
    /// The released VideoVLA (CogVideoX-5B-I2V shaped, 256×256, 49 frames, 6×7 actions).
    pub fn released() -> Self {
        Self {
            num_layers: 42,
            hidden_size: 3072,
            num_attention_heads: 48,
            time_embed_dim: 512,
            in_channels: 32,
            out_channels: 16,
            patch_size: 2,
            text_hidden_size: 4096,
            text_length: 226,
            latent_frames: 13,
            latent_height: 32,
            latent_width: 32,
            action_length: 6,
            action_dim: 7,
            num_robot_ids: 100,
            intermediate_size: 12288,
            layernorm_eps: 1e-5,
            qk_layernorm_eps: 1e-6,
            final_norm_eps: 1e-6,
            rope_theta: 10000.0,
            max_position_embeddings: 64,
        }
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// RoPE sizes per axis (t, h, w) as SAT derives them from the head size.
    pub fn rope_dims(&self) -> (usize, usize, usize) {
        let hd = self.head_dim();
        (hd / 4, hd / 8 * 3, hd / 8 * 3)
    }

    /// Token grid (frames, rows, columns).
    pub fn grid(&self) -> (usize, usize, usize) {
        (
            self.latent_frames,
            self.latent_height / self.patch_size,
            self.latent_width / self.patch_size,
        )
    }

    pub fn num_video_tokens(&self) -> usize {
        let (t, h, w) = self.grid();
        t * h * w
    }

    /// Check internal consistency; a clear message instead of a shape error deep inside.
    pub fn validate(&self) -> anyhow::Result<()> {
        let hd = self.head_dim();
        anyhow::ensure!(
            self.hidden_size % self.num_attention_heads == 0,
            "dit config: hidden_size {} is not divisible by num_attention_heads {}",
            self.hidden_size,
            self.num_attention_heads
        );
        let (a, b, c) = self.rope_dims();
        anyhow::ensure!(
            a + b + c == hd && a % 2 == 0 && b % 2 == 0,
            "dit config: head size {hd} does not split into SAT's RoPE axes (t={a}, h={b}, w={c}); use a multiple of 16"
        );
        anyhow::ensure!(
            self.latent_height % self.patch_size == 0 && self.latent_width % self.patch_size == 0,
            "dit config: latent size {}x{} is not divisible by patch size {}",
            self.latent_height,
            self.latent_width,
            self.patch_size
        );
        Ok(())
    }
}

/// How attention is computed. Both give the same numbers to float rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionImpl {
    /// `softmax(q kᵀ · scale) v` with explicit matrices; works on every device.
    Naive,
    /// candle's CPU flash attention (inference only, f32/f16); falls back to `Naive` elsewhere.
    CpuFlash,
}

struct Block {
    input_layernorm: LayerNorm,
    qkv: Linear,
    dense: Linear,
    post_attention_layernorm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    ada: Linear,
    q_norm: LayerNorm,
    k_norm: LayerNorm,
}

fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    candle_nn::layer_norm(size, candle_nn::LayerNormConfig { eps, ..Default::default() }, vb)
}

/// `x * (1 + scale) + shift` with per-sample (B, D) modulations broadcast over tokens.
fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    x.broadcast_mul(&(scale.unsqueeze(1)? + 1.0)?)?
        .broadcast_add(&shift.unsqueeze(1)?)
}

/// Sinusoidal time embedding `[cos | sin]` exactly as sgm's `timestep_embedding`.
pub fn timestep_embedding(timesteps: &[i64], dim: usize, device: &Device) -> Result<Tensor> {
    let half = dim / 2;
    let ln_period = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| ((ln_period * i as f32) / half as f32).exp())
        .collect();
    let mut out = Vec::with_capacity(timesteps.len() * dim);
    for &t in timesteps {
        let t = t as f32;
        out.extend(freqs.iter().map(|f| (t * f).cos()));
        out.extend(freqs.iter().map(|f| (t * f).sin()));
        if dim % 2 == 1 {
            out.push(0.0);
        }
    }
    Tensor::from_vec(out, (timesteps.len(), dim), device)
}

/// RoPE tables for the video grid: (N, head_dim/2) cos and sin for candle's interleaved `rope_i`.
/// SAT repeats each frequency twice and rotates interleaved pairs; taking every other column
/// of its (N, head_dim) tables gives exactly these.
fn rope_tables(cfg: &DitConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let (t_n, h_n, w_n) = cfg.grid();
    let (dt, dh, dw) = cfg.rope_dims();
    let theta = cfg.rope_theta as f32;
    let axis_freqs = |d: usize| -> Vec<f32> {
        (0..d / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / d as f32))
            .collect()
    };
    let (ft, fh, fw) = (axis_freqs(dt), axis_freqs(dh), axis_freqs(dw));
    let half = (dt + dh + dw) / 2;
    let n = t_n * h_n * w_n;
    let mut cos = Vec::with_capacity(n * half);
    let mut sin = Vec::with_capacity(n * half);
    for t in 0..t_n {
        for h in 0..h_n {
            for w in 0..w_n {
                let angles = ft
                    .iter()
                    .map(|f| t as f32 * f)
                    .chain(fh.iter().map(|f| h as f32 * f))
                    .chain(fw.iter().map(|f| w as f32 * f));
                for a in angles {
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
    }
    Ok((
        Tensor::from_vec(cos, (n, half), device)?,
        Tensor::from_vec(sin, (n, half), device)?,
    ))
}

pub struct Dit {
    cfg: DitConfig,
    dtype: DType,
    time_embed_0: Linear,
    time_embed_2: Linear,
    patch_weight: Tensor,
    patch_bias: Tensor,
    text_proj: Linear,
    action_proj: Linear,
    pos_embedding: Tensor,
    action_pos_embedding: Tensor,
    robot_embedding: Embedding,
    blocks: Vec<Block>,
    final_layernorm: LayerNorm,
    norm_final: LayerNorm,
    final_linear: Linear,
    final_ada: Linear,
    action_norm_final: LayerNorm,
    action_linear: Linear,
    action_ada: Linear,
    rope_cos: Tensor,
    rope_sin: Tensor,
    attention: AttentionImpl,
}

/// Inputs of one DiT forward pass.
pub struct DitInput<'a> {
    /// (B, T, in_channels, H, W): noisy latents concatenated with the image-conditioning latents.
    pub x: &'a Tensor,
    /// (B, L, text_hidden_size)
    pub text: &'a Tensor,
    /// (B, A, action_dim) noisy actions.
    pub actions: &'a Tensor,
    /// DDPM indices, one per sample.
    pub timesteps: &'a [i64],
    /// (B,) robot ids (u32 or i64).
    pub robot_ids: &'a Tensor,
}

impl Dit {
    pub fn new(cfg: &DitConfig, vb: VarBuilder) -> anyhow::Result<Self> {
        cfg.validate()?;
        let d = cfg.hidden_size;
        let te = cfg.time_embed_dim;
        let p = cfg.patch_size;
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let time_embed_0 = candle_nn::linear(d, te, vb.pp("time_embed.0"))?;
        let time_embed_2 = candle_nn::linear(te, te, vb.pp("time_embed.2"))?;
        let pe = vb.pp("mixins.patch_embed");
        let patch_weight = pe.get((d, cfg.in_channels, p, p), "proj.weight")?;
        let patch_bias = pe.get(d, "proj.bias")?;
        let text_proj = candle_nn::linear(cfg.text_hidden_size, d, pe.pp("text_proj"))?;
        let action_proj = candle_nn::linear(cfg.action_dim, d, pe.pp("action_proj"))?;
        let pos = vb.pp("mixins.pos_embed");
        let pos_embedding =
            pos.get((1, cfg.text_length + cfg.num_video_tokens(), d), "pos_embedding")?;
        let action_pos_embedding = pos.get((1, cfg.action_length, d), "action_pos_embedding")?;
        let robot_embedding =
            candle_nn::embedding(cfg.num_robot_ids, d, pos.pp("action_robotid_embedding"))?;
        let ada = vb.pp("mixins.adaln_layer");
        let hd = cfg.head_dim();
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let l = vb.pp(format!("transformer.layers.{i}"));
            blocks.push(Block {
                input_layernorm: layer_norm(d, cfg.layernorm_eps, l.pp("input_layernorm"))?,
                qkv: candle_nn::linear(d, 3 * d, l.pp("attention.query_key_value"))?,
                dense: candle_nn::linear(d, d, l.pp("attention.dense"))?,
                post_attention_layernorm: layer_norm(
                    d,
                    cfg.layernorm_eps,
                    l.pp("post_attention_layernorm"),
                )?,
                fc1: candle_nn::linear(d, cfg.intermediate_size, l.pp("mlp.dense_h_to_4h"))?,
                fc2: candle_nn::linear(cfg.intermediate_size, d, l.pp("mlp.dense_4h_to_h"))?,
                ada: candle_nn::linear(te, 12 * d, ada.pp(format!("adaLN_modulations.{i}.1")))?,
                q_norm: layer_norm(hd, cfg.qk_layernorm_eps, ada.pp(format!("query_layernorm_list.{i}")))?,
                k_norm: layer_norm(hd, cfg.qk_layernorm_eps, ada.pp(format!("key_layernorm_list.{i}")))?,
            });
        }
        let final_layernorm =
            layer_norm(d, cfg.layernorm_eps, vb.pp("transformer.final_layernorm"))?;
        let fl = vb.pp("mixins.final_layer");
        let norm_final = layer_norm(d, cfg.final_norm_eps, fl.pp("norm_final"))?;
        let final_linear = candle_nn::linear(d, p * p * cfg.out_channels, fl.pp("linear"))?;
        let final_ada = candle_nn::linear(te, 2 * d, fl.pp("adaLN_modulation.1"))?;
        let action_norm_final = layer_norm(d, cfg.final_norm_eps, fl.pp("action_norm_final"))?;
        let action_linear = candle_nn::linear(d, cfg.action_dim, fl.pp("action_linear"))?;
        let action_ada = candle_nn::linear(te, 2 * d, fl.pp("action_adaLN_modulation.1"))?;
        let (rope_cos, rope_sin) = rope_tables(cfg, &device)?;
        let attention = if device.is_cpu() {
            AttentionImpl::CpuFlash
        } else {
            AttentionImpl::Naive
        };
        Ok(Self {
            cfg: cfg.clone(),
            dtype,
            time_embed_0,
            time_embed_2,
            patch_weight,
            patch_bias,
            text_proj,
            action_proj,
            pos_embedding,
            action_pos_embedding,
            robot_embedding,
            blocks,
            final_layernorm,
            norm_final,
            final_linear,
            final_ada,
            action_norm_final,
            action_linear,
            action_ada,
            rope_cos: rope_cos.to_dtype(dtype)?,
            rope_sin: rope_sin.to_dtype(dtype)?,
            attention,
        })
    }

    pub fn config(&self) -> &DitConfig {
        &self.cfg
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        self.pos_embedding.device()
    }

    pub fn set_attention(&mut self, attention: AttentionImpl) {
        self.attention = attention;
    }

    /// Patch embedding: a Conv2d with kernel = stride = p on each frame, written as
    /// patchify + matmul (the same sums), flattened row-major over (t, h, w).
    fn patch_embed(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c, hh, ww) = x.dims5()?;
        let p = self.cfg.patch_size;
        let (h, w) = (hh / p, ww / p);
        let patches = x
            .reshape((b * t, c, h, p, w, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b, t * h * w, c * p * p))?;
        let d = self.cfg.hidden_size;
        let weight = self.patch_weight.reshape((d, c * p * p))?;
        patches
            .broadcast_matmul(&weight.t()?)?
            .broadcast_add(&self.patch_bias)
    }

    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        // q, k, v: (B, H, S, hd)
        let scale = 1.0 / (self.cfg.head_dim() as f64).sqrt();
        let flash_ok = self.attention == AttentionImpl::CpuFlash
            && q.device().is_cpu()
            && matches!(q.dtype(), DType::F32 | DType::F16);
        if flash_ok {
            let q = q.transpose(1, 2)?.contiguous()?;
            let k = k.transpose(1, 2)?.contiguous()?;
            let v = v.transpose(1, 2)?.contiguous()?;
            let attn = candle_nn::attention::AttnMask::None;
            return match q.dtype() {
                DType::F16 => candle_nn::attention::flash_attn::<half::f16>(
                    &q, &k, &v, scale as f32, attn, None, None,
                ),
                _ => candle_nn::attention::flash_attn::<f32>(&q, &k, &v, scale as f32, attn, None, None),
            };
        }
        let scores = (q.matmul(&k.t()?)? * scale)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?
            .to_dtype(q.dtype())?;
        probs.matmul(v)
    }

    fn block_forward(
        &self,
        blk: &Block,
        h: &Tensor,
        emb_act: &Tensor,
        text_len: usize,
        video_len: usize,
    ) -> Result<Tensor> {
        let d = self.cfg.hidden_size;
        let (b, s, _) = h.dims3()?;
        let img_len = s - text_len;
        let m = blk.ada.forward(emb_act)?; // (B, 12 D)
        let chunk = |i: usize| m.narrow(1, i * d, d);
        let (shift_msa, scale_msa, gate_msa) = (chunk(0)?, chunk(1)?, chunk(2)?);
        let (shift_mlp, scale_mlp, gate_mlp) = (chunk(3)?, chunk(4)?, chunk(5)?);
        let (t_shift_msa, t_scale_msa, t_gate_msa) = (chunk(6)?, chunk(7)?, chunk(8)?);
        let (t_shift_mlp, t_scale_mlp, t_gate_mlp) = (chunk(9)?, chunk(10)?, chunk(11)?);

        // Attention. The LayerNorm is per token, so normalising the whole sequence and then
        // splitting equals SAT's split-then-normalise.
        let normed = blk.input_layernorm.forward(h)?;
        let txt_in = modulate(&normed.narrow(1, 0, text_len)?, &t_shift_msa, &t_scale_msa)?;
        let img_in = modulate(&normed.narrow(1, text_len, img_len)?, &shift_msa, &scale_msa)?;
        let attn_in = Tensor::cat(&[&txt_in, &img_in], 1)?;
        let nh = self.cfg.num_attention_heads;
        let hd = self.cfg.head_dim();
        let qkv = blk.qkv.forward(&attn_in)?; // (B, S, 3D): contiguous q | k | v
        let heads = |i: usize| -> Result<Tensor> {
            qkv.narrow(2, i * d, d)?
                .reshape((b, s, nh, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = blk.q_norm.forward(&heads(0)?)?;
        let k = blk.k_norm.forward(&heads(1)?)?;
        let v = heads(2)?;
        let q = self.apply_rope(&q, text_len, video_len)?;
        let k = self.apply_rope(&k, text_len, video_len)?;
        let attn = self.attention(&q, &k, &v)?; // (B, H, S, hd)
        let attn = attn.transpose(1, 2)?.reshape((b, s, d))?;
        let attn = blk.dense.forward(&attn)?;
        let txt = h.narrow(1, 0, text_len)?;
        let img = h.narrow(1, text_len, img_len)?;
        let txt = (txt + attn.narrow(1, 0, text_len)?.broadcast_mul(&t_gate_msa.unsqueeze(1)?)?)?;
        let img = (img + attn.narrow(1, text_len, img_len)?.broadcast_mul(&gate_msa.unsqueeze(1)?)?)?;

        // MLP.
        let h = Tensor::cat(&[&txt, &img], 1)?;
        let normed = blk.post_attention_layernorm.forward(&h)?;
        let txt_in = modulate(&normed.narrow(1, 0, text_len)?, &t_shift_mlp, &t_scale_mlp)?;
        let img_in = modulate(&normed.narrow(1, text_len, img_len)?, &shift_mlp, &scale_mlp)?;
        let mlp_in = Tensor::cat(&[&txt_in, &img_in], 1)?;
        let mlp = blk.fc2.forward(&blk.fc1.forward(&mlp_in)?.gelu()?)?;
        let txt = (txt + mlp.narrow(1, 0, text_len)?.broadcast_mul(&t_gate_mlp.unsqueeze(1)?)?)?;
        let img = (img + mlp.narrow(1, text_len, img_len)?.broadcast_mul(&gate_mlp.unsqueeze(1)?)?)?;
        Tensor::cat(&[&txt, &img], 1)
    }

    /// RoPE on the video tokens only: positions `[text_len, text_len + video_len)`.
    fn apply_rope(&self, x: &Tensor, text_len: usize, video_len: usize) -> Result<Tensor> {
        let s = x.dim(2)?;
        let txt = x.narrow(2, 0, text_len)?;
        let vid = x.narrow(2, text_len, video_len)?.contiguous()?;
        let act = x.narrow(2, text_len + video_len, s - text_len - video_len)?;
        let cos = self.rope_cos.narrow(0, 0, video_len)?;
        let sin = self.rope_sin.narrow(0, 0, video_len)?;
        let vid = candle_nn::rotary_emb::rope_i(&vid, &cos, &sin)?;
        Tensor::cat(&[&txt, &vid, &act], 2)
    }

    /// One forward pass → (video v-prediction (B,T,Cout,H,W), action v-prediction (B,A,action_dim)).
    pub fn forward(&self, input: &DitInput) -> Result<(Tensor, Tensor)> {
        let cfg = &self.cfg;
        let dt = self.dtype;
        let x = input.x.to_dtype(dt)?;
        let text = input.text.to_dtype(dt)?;
        let actions = input.actions.to_dtype(dt)?;
        let (b, t, _c, hh, ww) = x.dims5()?;
        let (_, text_len, _) = text.dims3()?;
        let (_, act_len, _) = actions.dims3()?;
        if text_len != cfg.text_length {
            candle_core::bail!(
                "text embedding has {text_len} tokens, the model expects {}",
                cfg.text_length
            );
        }
        let p = cfg.patch_size;
        let video_len = t * (hh / p) * (ww / p);
        if video_len > cfg.num_video_tokens() || act_len > cfg.action_length {
            candle_core::bail!(
                "input of {t} latent frames of {hh}x{ww} and {act_len} actions exceeds the model's {}x{}x{} grid / {} actions",
                cfg.latent_frames,
                cfg.latent_height,
                cfg.latent_width,
                cfg.action_length
            );
        }

        let t_emb = timestep_embedding(input.timesteps, cfg.hidden_size, x.device())?.to_dtype(dt)?;
        let emb = self.time_embed_2.forward(&self.time_embed_0.forward(&t_emb)?.silu()?)?;
        let emb_act = emb.silu()?;

        let tokens = Tensor::cat(&[&self.text_proj.forward(&text)?, &self.patch_embed(&x)?], 1)?;
        let tokens = tokens.broadcast_add(&self.pos_embedding.narrow(1, 0, text_len + video_len)?)?;
        let robot = self.robot_embedding.forward(input.robot_ids)?.unsqueeze(1)?; // (B,1,D)
        let act_tokens = self
            .action_proj
            .forward(&actions)?
            .broadcast_add(&self.action_pos_embedding.narrow(1, 0, act_len)?)?
            .broadcast_add(&robot)?;
        let mut h = Tensor::cat(&[&tokens, &act_tokens], 1)?;
        for blk in &self.blocks {
            h = self.block_forward(blk, &h, &emb_act, text_len, video_len)?;
        }
        let h = self.final_layernorm.forward(&h)?;

        let d = cfg.hidden_size;
        let ada = self.final_ada.forward(&emb_act)?;
        let vid = self.norm_final.forward(&h.narrow(1, text_len, video_len)?)?;
        let vid = modulate(&vid, &ada.narrow(1, 0, d)?, &ada.narrow(1, d, d)?)?;
        let vid = self.final_linear.forward(&vid)?; // (B, N, C p p)
        let (h_n, w_n) = (hh / p, ww / p);
        let c = cfg.out_channels;
        let video = vid
            .reshape((b * t, h_n, w_n, c, p, p))?
            .permute((0, 3, 1, 4, 2, 5))?
            .reshape((b, t, c, hh, ww))?;

        let ada = self.action_ada.forward(&emb_act)?;
        let act = self
            .action_norm_final
            .forward(&h.narrow(1, text_len + video_len, act_len)?)?;
        let act = modulate(&act, &ada.narrow(1, 0, d)?, &ada.narrow(1, d, d)?)?;
        let action = self.action_linear.forward(&act)?;
        Ok((video.to_dtype(DType::F32)?, action.to_dtype(DType::F32)?))
    }
}

/// A (B,) robot-id tensor.
pub fn robot_ids(ids: &[u32], device: &Device) -> Result<Tensor> {
    Tensor::new(ids, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_config_matches_the_paper_model() {
        let c = DitConfig::released();
        c.validate().unwrap();
        assert_eq!(c.rope_dims(), (16, 24, 24));
        assert_eq!(c.num_video_tokens(), 3328);
        assert_eq!(c.text_length + c.num_video_tokens() + c.action_length, 3560);
    }

    #[test]
    fn bad_head_size_is_rejected_with_a_reason() {
        let mut c = DitConfig::released();
        c.num_attention_heads = 7;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("not divisible"), "{e}");
    }

    #[test]
    fn time_embedding_is_cos_then_sin() {
        let e = timestep_embedding(&[0, 999], 8, &Device::Cpu).unwrap();
        let v = e.to_vec2::<f32>().unwrap();
        assert_eq!(&v[0][..4], &[1.0; 4]);
        assert_eq!(&v[0][4..], &[0.0; 4]);
        assert!((v[1][0] - 999f32.cos()).abs() < 1e-6);
        assert!((v[1][4] - 999f32.sin()).abs() < 1e-6);
    }
}
