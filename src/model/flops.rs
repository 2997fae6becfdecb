//! Floating-point work of one denoising step, from the config (so the README figures are
//! reproducible: `videovla flops`).
//!
//! Counted: every matrix product at 2 FLOPs per multiply-add — the patch/text/action
//! embeddings, per layer qkv, q·kᵀ, attention·v, the output projection and the MLP, the adaLN
//! and time-embedding linears, and the final projections. Not counted: LayerNorm, softmax,
//! RoPE, GELU and the other element-wise work (well under 1 % here).

use super::dit::DitConfig;

/// FLOPs of one DiT forward pass, split by kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DitFlops {
    /// Tokens per sample: text + video + action.
    pub tokens: usize,
    /// Linear layers applied to tokens (qkv, out-proj, MLP, embeddings, final layers).
    pub linear: f64,
    /// q·kᵀ and attention·v.
    pub attention: f64,
    /// Per-sample conditioning (time embedding, adaLN modulations).
    pub conditioning: f64,
}

impl DitFlops {
    pub fn total(&self) -> f64 {
        self.linear + self.attention + self.conditioning
    }
}

/// One forward pass over `batch` samples of `latent_frames` latent frames (the released
/// sampler runs the conditional and unconditional halves as a batch of 2).
pub fn dit_forward(cfg: &DitConfig, latent_frames: usize, batch: usize) -> DitFlops {
    let d = cfg.hidden_size as f64;
    let f = cfg.intermediate_size as f64;
    let te = cfg.time_embed_dim as f64;
    let p2 = (cfg.patch_size * cfg.patch_size) as f64;
    let (_, gh, gw) = cfg.grid();
    let n_video = latent_frames * gh * gw;
    let (l, a) = (cfg.text_length, cfg.action_length);
    let s = l + n_video + a;
    let (sf, nv) = (s as f64, n_video as f64);
    let b = batch as f64;
    let per_layer_linear = 2.0 * sf * d * (3.0 * d + d + 2.0 * f);
    let per_layer_attention = 2.0 * 2.0 * sf * sf * d;
    let embed = 2.0 * (nv * cfg.in_channels as f64 * p2 * d
        + l as f64 * cfg.text_hidden_size as f64 * d
        + a as f64 * cfg.action_dim as f64 * d);
    let head = 2.0 * (nv * d * p2 * cfg.out_channels as f64 + a as f64 * d * cfg.action_dim as f64);
    let layers = cfg.num_layers as f64;
    let time = 2.0 * (d * te + te * te);
    let ada = 2.0 * te * (12.0 * d * layers + 4.0 * d);
    DitFlops {
        tokens: s,
        linear: b * (layers * per_layer_linear + embed + head),
        attention: b * layers * per_layer_attention,
        conditioning: b * (time + ada),
    }
}

/// T5 encoder FLOPs for one text (run once per prediction, not per step).
pub fn t5_encoder(d_model: usize, d_kv: usize, num_heads: usize, d_ff: usize, layers: usize, len: usize, gated: bool) -> f64 {
    let (d, inner, ff, n) = (d_model as f64, (d_kv * num_heads) as f64, d_ff as f64, len as f64);
    let mats = if gated { 3.0 } else { 2.0 };
    layers as f64 * (2.0 * n * (4.0 * d * inner + mats * d * ff) + 4.0 * n * n * inner)
}

/// The lower bound on time `flops` take at `peak` FLOP/s (seconds).
pub fn floor_seconds(flops: f64, peak: f64) -> f64 {
    flops / peak
}

/// H100 SXM dense bf16 tensor-core peak (no sparsity), FLOP/s.
pub const H100_BF16_DENSE: f64 = 989e12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_step_is_about_81_tflop() {
        let c = DitConfig::released();
        let f = dit_forward(&c, 13, 2);
        assert_eq!(f.tokens, 3560);
        // Closed form for the dominant terms: per sample and layer 24·S·D² + 4·S²·D (F = 4D).
        let (s, d) = (3560f64, 3072f64);
        let main = 2.0 * 42.0 * (24.0 * s * d * d + 4.0 * s * s * d);
        assert!((f.linear + f.attention - main) / main < 0.01, "{f:?} vs {main}");
        assert!(f.linear + f.attention >= main);
        assert!((f.total() / 1e12 - 80.9).abs() < 0.5, "{}", f.total() / 1e12);
        // The paper's real setting: 4 latent frames → 226 + 1024 + 6 tokens.
        let r = dit_forward(&c, 4, 2);
        assert_eq!(r.tokens, 1256);
        assert!((r.total() / 1e12 - 25.6).abs() < 0.5, "{}", r.total() / 1e12);
        // Attention is the part that grows quadratically with the video length.
        assert!(f.attention / f.total() > 2.0 * r.attention / r.total());
    }

    #[test]
    fn t5_xxl_is_about_2_tflop_per_text() {
        let t = t5_encoder(4096, 64, 64, 10240, 24, 226, true);
        assert!((t / 1e12 - 2.1).abs() < 0.1, "{}", t / 1e12);
    }
}
