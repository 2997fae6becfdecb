//! The tensors a Rust module reads, recorded by building it against a VarBuilder that hands
//! out zero-sized-storage (broadcast) tensors: the module constructors are the one source of
//! truth for names and shapes.

use std::sync::Mutex;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::model::dit::{Dit, DitConfig};
use crate::model::vae::{AutoencoderKLCogVideoX, VaeConfig};

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, Vec<usize>)>>,
}

impl SimpleBackend for Recorder {
    fn get(&self, s: Shape, name: &str, _h: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.seen.lock().expect("recorder lock").push((name.to_string(), s.dims().to_vec()));
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("shape recorder: {name} was requested without a shape")
    }

    /// Optional tensors (read only when present, e.g. the VAE's `latent_shift`) are not part of
    /// the expected set.
    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

fn record(build: impl FnOnce(VarBuilder) -> anyhow::Result<()>) -> anyhow::Result<Vec<(String, Vec<usize>)>> {
    let rec = std::sync::Arc::new(Recorder::default());
    struct Shared(std::sync::Arc<Recorder>);
    impl SimpleBackend for Shared {
        fn get(&self, s: Shape, name: &str, h: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
            self.0.get(s, name, h, dtype, dev)
        }
        fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
            self.0.get_unchecked(name, dtype, dev)
        }
        fn contains_tensor(&self, name: &str) -> bool {
            self.0.contains_tensor(name)
        }
    }
    let vb = VarBuilder::from_backend(Box::new(Shared(rec.clone())), DType::BF16, Device::Cpu);
    build(vb)?;
    let seen = std::mem::take(&mut *rec.seen.lock().expect("recorder lock"));
    // A module may read a tensor twice (e.g. GroupNorm weight/bias); keep the first.
    let mut out: Vec<(String, Vec<usize>)> = Vec::with_capacity(seen.len());
    let mut names: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (n, s) in seen {
        match names.get(&n) {
            Some(&i) => {
                let prev: &Vec<usize> = &out[i].1;
                anyhow::ensure!(prev == &s, "{n} is read with two shapes: {prev:?} and {s:?}");
            }
            None => {
                names.insert(n.clone(), out.len());
                out.push((n, s));
            }
        }
    }
    Ok(out)
}

/// Every tensor `Dit::new` reads (SAT names without `model.diffusion_model.`).
pub fn dit(cfg: &DitConfig) -> anyhow::Result<Vec<(String, Vec<usize>)>> {
    record(|vb| Dit::new(cfg, vb).map(|_| ()))
}

/// Every tensor `AutoencoderKLCogVideoX::new` reads (diffusers names).
pub fn vae(cfg: &VaeConfig) -> anyhow::Result<Vec<(String, Vec<usize>)>> {
    record(|vb| AutoencoderKLCogVideoX::new(cfg, vb).map(|_| ()).map_err(Into::into))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_dit_reads_every_sat_tensor_but_the_unused_ones() {
        let t = dit(&DitConfig::released()).unwrap();
        let n: usize = t.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        // The SAT key list (training/tests/test_dit_keys.py: 28 + 18 per layer) minus the
        // unused transformer.position_embeddings.weight.
        assert_eq!(t.len(), 27 + 18 * 42);
        // The PyTorch reference counts 5.586 B parameters including position_embeddings (64 × 3072).
        println!("released DiT: {} tensors, {n} parameters", t.len());
        assert!(((n as f64 + 64.0 * 3072.0) / 1e9 - 5.586).abs() < 0.005, "{n}");
        let get = |k: &str| t.iter().find(|(n, _)| n == k).map(|(_, s)| s.clone()).unwrap();
        assert_eq!(get("mixins.pos_embed.pos_embedding"), vec![1, 226 + 3328, 3072]);
        assert_eq!(get("mixins.patch_embed.proj.weight"), vec![3072, 32, 2, 2]);
        assert_eq!(get("mixins.adaln_layer.adaLN_modulations.41.1.weight"), vec![12 * 3072, 512]);
        assert!(t.iter().all(|(n, _)| !n.contains("freqs_") && !n.contains("position_embeddings")));
    }

    #[test]
    fn released_vae_tensors() {
        let t = vae(&VaeConfig::released()).unwrap();
        let n: usize = t.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert!(t.iter().any(|(n, _)| n == "decoder.up_blocks.3.resnets.3.conv2.conv.weight"));
        assert!(t.iter().any(|(n, s)| n == "encoder.conv_in.conv.weight" && s == &vec![128, 3, 3, 3, 3]));
        println!("released VAE: {} tensors, {n} parameters", t.len());
        // CogVideoX's VAE is 215.6 M parameters.
        assert!((215.0e6..216.2e6).contains(&(n as f64)), "{n}");
    }
}
