//! Parity of the Rust port against the PyTorch reference fixtures in `tests/fixtures/`
//! (contract: `training/FIXTURES.md`). Run with `cargo test --release --test parity -- --nocapture`
//! to see the measured errors.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join(name)
}

/// ‖a − b‖ / ‖b‖ over all elements, after checking the shapes agree.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let num = (&a - &b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt();
    let den = b.sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt();
    num / den.max(1e-30)
}

// ---------------------------------------------------------------------------------------------
// VAE (src/model/vae.rs) against `vae_tiny` (diffusers AutoencoderKLCogVideoX).

mod vae_fixture {
    use super::*;
    use videovla::model::vae::{AutoencoderKLCogVideoX, VaeConfig};

    pub struct Fixture {
        pub cfg: VaeConfig,
        pub json: serde_json::Value,
        pub tensors: HashMap<String, Tensor>,
    }

    pub fn load() -> Fixture {
        let json = fixture_path("vae_tiny.json");
        let st = fixture_path("vae_tiny.safetensors");
        assert!(
            json.exists() && st.exists(),
            "missing {} / {}: generate with `python training/gen_fixtures.py --out tests/fixtures`",
            json.display(),
            st.display()
        );
        let text = std::fs::read_to_string(&json).unwrap();
        let cfg = VaeConfig::from_json_str(&text).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let tensors = candle_core::safetensors::load(&st, &Device::Cpu).unwrap();
        let tensors = tensors.into_iter().map(|(k, v)| (k, v.to_dtype(DType::F32).unwrap())).collect();
        Fixture { cfg, json, tensors }
    }

    impl Fixture {
        pub fn io(&self, name: &str) -> &Tensor {
            self.tensors.get(&format!("io.{name}")).unwrap_or_else(|| panic!("fixture lacks io.{name}"))
        }

        pub fn weights(&self) -> HashMap<String, Tensor> {
            self.tensors.iter().filter(|(k, _)| !k.starts_with("io.")).map(|(k, v)| (k.clone(), v.clone())).collect()
        }

        pub fn model(&self) -> AutoencoderKLCogVideoX {
            let vb = VarBuilder::from_tensors(self.weights(), DType::F32, &Device::Cpu);
            AutoencoderKLCogVideoX::new(&self.cfg, vb).unwrap()
        }
    }
}

#[test]
fn vae_encode_clip_and_image_match_reference() {
    let fx = vae_fixture::load();
    // Through the file loader (config json + memory-mapped safetensors with the io.* extras).
    let vae = videovla::model::vae::AutoencoderKLCogVideoX::load(
        &fixture_path("vae_tiny.json"),
        &[fixture_path("vae_tiny.safetensors")],
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let (mean, logvar) = vae.encode(fx.io("video")).unwrap();
    let e_mean = rel_err(&mean, fx.io("posterior_mean"));
    let e_logvar = rel_err(&logvar, fx.io("posterior_logvar"));
    let (img_mean, _) = vae.encode(fx.io("image")).unwrap();
    let e_img = rel_err(&img_mean, fx.io("image_mean"));
    println!("vae encode: rel err posterior_mean {e_mean:.3e}, posterior_logvar {e_logvar:.3e}, image_mean {e_img:.3e}");
    assert!(e_mean <= 1e-4, "posterior_mean rel err {e_mean}");
    assert!(e_logvar <= 1e-4, "posterior_logvar rel err {e_logvar}");
    assert!(e_img <= 1e-4, "image_mean rel err {e_img}");

    // The reference encodes the whole clip at once (SAT); diffusers' 8-frame batches differ.
    let mut batched = fx.model();
    batched.encode_frame_batch = 8;
    let e_batched = rel_err(&batched.encode(fx.io("video")).unwrap().0, fx.io("posterior_mean"));
    println!("vae encode in diffusers' 8-frame batches: rel err {e_batched:.3e} (expected to differ)");
    assert!(e_batched > 1e-3, "8-frame batched encode should differ from the whole-clip reference");
}

#[test]
fn vae_decode_chunked_matches_reference() {
    let fx = vae_fixture::load();
    let vae = fx.model();
    let z = fx.io("z");
    let want = fx.io("decoded");
    let t0 = std::time::Instant::now();
    if let Some(chunks) = fx.json.get("decode_chunks") {
        let want_chunks: Vec<std::ops::Range<usize>> = chunks
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c[0].as_u64().unwrap() as usize..c[1].as_u64().unwrap() as usize)
            .collect();
        assert_eq!(vae.decode_chunks(z.dim(2).unwrap()), want_chunks);
    }
    let got = vae.decode(z).unwrap();
    let dt = t0.elapsed();
    let e = rel_err(&got, want);
    println!("vae decode (chunks {:?}): rel err {e:.3e} ({:.1} ms)", vae.decode_chunks(z.dim(2).unwrap()), dt.as_secs_f64() * 1e3);
    assert!(e <= 1e-4, "decoded rel err {e}");

    // The same through the chunk-by-chunk API.
    let mut state = videovla::model::vae::DecodeState::new();
    let parts: Vec<Tensor> = vae
        .decode_chunks(z.dim(2).unwrap())
        .into_iter()
        .map(|r| vae.decode_chunk(&z.narrow(2, r.start, r.len()).unwrap(), &mut state).unwrap())
        .collect();
    assert_eq!(parts[0].dim(2).unwrap(), 9, "first chunk of 3 latents gives 9 frames");
    let e_parts = rel_err(&Tensor::cat(&parts, 2).unwrap(), want);
    assert!(e_parts <= 1e-4, "decode_chunk rel err {e_parts}");

    // Chunking matters (GroupNorm statistics are per chunk): one unchunked pass is different.
    let e_whole = rel_err(&vae.decode_unchunked(z).unwrap(), want);
    println!("vae decode without chunking: rel err {e_whole:.3e} (expected to differ)");
    assert!(e_whole > 1e-4, "unchunked decode should not match the chunked reference ({e_whole})");
}

/// Encode the clip and decode `io.z` with weights and inputs in `dtype`; relative errors of
/// (posterior mean, posterior logvar, decoded) against the f32 reference.
fn vae_errors_in(dtype: DType) -> (f64, f64, f64) {
    let fx = vae_fixture::load();
    let vb = VarBuilder::from_tensors(fx.weights(), dtype, &Device::Cpu);
    let vae = videovla::model::vae::AutoencoderKLCogVideoX::new(&fx.cfg, vb).unwrap();
    let input = |name: &str| fx.io(name).to_dtype(dtype).unwrap();
    let (mean, logvar) = vae.encode(&input("video")).unwrap();
    let dec = vae.decode(&input("z")).unwrap();
    (
        rel_err(&mean, fx.io("posterior_mean")),
        rel_err(&logvar, fx.io("posterior_logvar")),
        rel_err(&dec, fx.io("decoded")),
    )
}

/// f64 takes the tensor-op GroupNorm/spatial-norm path (the fused CPU kernel is f32-only),
/// i.e. what other devices and dtypes run.
#[test]
fn vae_f64_tensor_op_path_matches_reference() {
    let (e_m, e_l, e_d) = vae_errors_in(DType::F64);
    println!("vae f64 tensor-op path: rel err mean {e_m:.3e}, logvar {e_l:.3e}, decoded {e_d:.3e}");
    assert!(e_m <= 1e-4 && e_l <= 1e-4 && e_d <= 1e-4);
}

/// bf16 weights and activations (the official code's precision) stay close to the f32
/// reference: a smoke test of the half-precision paths (GroupNorm statistics in f32).
#[test]
fn vae_bf16_close_to_reference() {
    let (e_m, e_l, e_d) = vae_errors_in(DType::BF16);
    println!("vae bf16: rel err mean {e_m:.3e}, logvar {e_l:.3e}, decoded {e_d:.3e}");
    assert!(e_m < 5e-2 && e_d < 5e-2);
}

/// A batch of two gives the same as two batches of one (encode and chunked decode).
#[test]
fn vae_batch_of_two_equals_singles() {
    let fx = vae_fixture::load();
    let vae = fx.model();
    let z1 = fx.io("z");
    let z2 = (z1.flip(&[3]).unwrap() * 0.5).unwrap();
    let both = vae.decode(&Tensor::cat(&[z1, &z2], 0).unwrap()).unwrap();
    let e1 = rel_err(&both.narrow(0, 0, 1).unwrap(), &vae.decode(z1).unwrap());
    let e2 = rel_err(&both.narrow(0, 1, 1).unwrap(), &vae.decode(&z2).unwrap());
    let x1 = fx.io("video");
    let x2 = x1.flip(&[4]).unwrap();
    let (m, _) = vae.encode(&Tensor::cat(&[x1, &x2], 0).unwrap()).unwrap();
    let e3 = rel_err(&m.narrow(0, 1, 1).unwrap(), &vae.encode(&x2).unwrap().0);
    println!("vae batch of two vs singles: decode {e1:.1e} / {e2:.1e}, encode {e3:.1e}");
    assert!(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5);
}

#[test]
fn vae_missing_or_misshaped_weight_is_a_named_error() {
    let fx = vae_fixture::load();
    let name = "decoder.up_blocks.1.resnets.0.conv1.conv.weight";

    let mut w = fx.weights();
    assert!(w.remove(name).is_some(), "fixture lacks {name}");
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    let err = videovla::model::vae::AutoencoderKLCogVideoX::new(&fx.cfg, vb).unwrap_err().to_string();
    println!("missing: {err}");
    assert!(err.contains(name), "error does not name the tensor: {err}");

    let mut w = fx.weights();
    let good = w[name].dims().to_vec();
    let mut bad = good.clone();
    bad[1] += 1;
    w.insert(name.to_string(), Tensor::zeros(bad.as_slice(), DType::F32, &Device::Cpu).unwrap());
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    let err = videovla::model::vae::AutoencoderKLCogVideoX::new(&fx.cfg, vb).unwrap_err().to_string();
    println!("mis-shaped: {err}");
    assert!(err.contains(name), "error does not name the tensor: {err}");
    assert!(err.contains(&format!("{good:?}")) && err.contains(&format!("{bad:?}")), "error lacks both shapes: {err}");
}
