//! Text conditioning: a T5 encoder (candle-transformers' T5, the same code path for T5-XXL and
//! the embedded tiny T5) and its tokenizer, padded to a fixed length with no attention mask,
//! as the released model does. The unconditional input is an all-zero embedding, not T5("").

use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::t5;
use tokenizers::Tokenizer;

pub struct TextEncoder {
    model: t5::T5EncoderModel,
    tokenizer: Tokenizer,
    max_length: usize,
    pad_id: u32,
    eos_id: u32,
    device: Device,
}

/// Token ids of one instruction and whether it had to be cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub truncated_from: Option<usize>,
}

impl TextEncoder {
    pub fn new(cfg: &t5::Config, vb: VarBuilder, tokenizer: Tokenizer, max_length: usize) -> anyhow::Result<Self> {
        let device = vb.device().clone();
        let model = t5::T5EncoderModel::load(vb, cfg).context("loading the T5 text encoder")?;
        Ok(Self {
            model,
            tokenizer,
            max_length,
            pad_id: cfg.pad_token_id as u32,
            eos_id: cfg.eos_token_id as u32,
            device,
        })
    }

    pub fn load_tokenizer(path: &Path) -> anyhow::Result<Tokenizer> {
        Tokenizer::from_file(path).map_err(|e| {
            anyhow::anyhow!("cannot read tokenizer {}: {e}; point --model at a folder with tokenizer.json", path.display())
        })
    }

    /// Tokenise like `T5Tokenizer(max_length=L, padding="max_length", truncation=True)`: the
    /// text's pieces, `</s>`, then padding; an over-long text keeps its first L−1 pieces + `</s>`.
    pub fn tokenize(&self, text: &str) -> anyhow::Result<Tokens> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| anyhow::anyhow!("tokenizing the instruction failed: {e}"))?;
        let mut ids: Vec<u32> = enc.get_ids().to_vec();
        // Tokenizers without a post-processor (word-level) get the EOS appended here.
        if ids.last() != Some(&self.eos_id) {
            ids.push(self.eos_id);
        }
        let n = ids.len();
        let truncated_from = if n > self.max_length {
            ids.truncate(self.max_length - 1);
            ids.push(self.eos_id);
            tracing::warn!(
                "instruction has {n} tokens; the model reads {}, the rest is cut",
                self.max_length
            );
            Some(n)
        } else {
            None
        };
        ids.resize(self.max_length, self.pad_id);
        Ok(Tokens { ids, truncated_from })
    }

    /// (1, L, d_model) embedding of one instruction, float32.
    pub fn encode(&mut self, text: &str) -> anyhow::Result<(Tensor, Tokens)> {
        let tokens = self.tokenize(text)?;
        let emb = self.encode_ids(&tokens.ids)?;
        Ok((emb, tokens))
    }

    pub fn encode_ids(&mut self, ids: &[u32]) -> anyhow::Result<Tensor> {
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let out = self.model.forward(&input)?;
        Ok(out.to_dtype(DType::F32)?)
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }
}
