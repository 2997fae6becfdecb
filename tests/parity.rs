//! Parity of every model stage against the PyTorch reference (golden fixtures written by
//! `training/gen_fixtures.py`, see `training/FIXTURES.md`). Each test prints the measured
//! relative error ‖out − ref‖ / ‖ref‖ (run with `--nocapture`) and requires ≤ 1e-4 in f32.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use videovla::model::dit::{AttentionImpl, Dit, DitConfig, DitInput};
use videovla::model::sampler::{self, Conditioning, RecordedNoise, SamplerKind, SamplerParams};

const TOL: f64 = 1e-4;

struct Fixture {
    json: serde_json::Value,
    tensors: HashMap<String, Tensor>,
}

fn fixture_path(name: &str, ext: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.{ext}"))
}

fn load(name: &str) -> Fixture {
    let jp = fixture_path(name, "json");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&jp)
            .unwrap_or_else(|e| panic!("{}: {e} (regenerate: python training/gen_fixtures.py --out tests/fixtures)", jp.display())),
    )
    .unwrap();
    let tensors = candle_core::safetensors::load(fixture_path(name, "safetensors"), &Device::Cpu).unwrap();
    Fixture { json, tensors }
}

impl Fixture {
    fn io(&self, key: &str) -> Tensor {
        self.tensors
            .get(&format!("io.{key}"))
            .unwrap_or_else(|| panic!("fixture lacks io.{key}"))
            .clone()
    }

    fn weights(&self) -> HashMap<String, Tensor> {
        self.tensors
            .iter()
            .filter(|(k, _)| !k.starts_with("io."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn vb(&self) -> VarBuilder<'static> {
        VarBuilder::from_tensors(self.weights(), DType::F32, &Device::Cpu)
    }

    fn config<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.json["config"].clone()).unwrap()
    }
}

fn rel_err(out: &Tensor, reference: &Tensor) -> f64 {
    assert_eq!(out.dims(), reference.dims(), "shape");
    let o = out.to_dtype(DType::F64).unwrap();
    let r = reference.to_dtype(DType::F64).unwrap();
    let num = (o - &r).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let den = r.sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(den > 0.0, "reference is all zeros: the fixture exercises nothing");
    (num / den).sqrt()
}

fn check(stage: &str, out: &Tensor, reference: &Tensor) {
    let e = rel_err(out, reference);
    println!("parity {stage:<28} rel err {e:.3e}");
    assert!(e <= TOL, "{stage}: relative error {e:.3e} > {TOL:e}");
}

fn ids_u32(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::I64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as u32)
        .collect()
}

fn load_dit(f: &Fixture) -> Dit {
    let cfg: DitConfig = f.config();
    Dit::new(&cfg, f.vb()).unwrap()
}

#[test]
fn dit_forward_matches_reference() {
    let f = load("dit_tiny");
    let mut dit = load_dit(&f);
    let timesteps: Vec<i64> = f.io("timesteps").to_dtype(DType::I64).unwrap().to_vec1().unwrap();
    let ids = Tensor::new(ids_u32(&f.io("robot_ids")), &Device::Cpu).unwrap();
    for (name, attn) in [("flash", AttentionImpl::CpuFlash), ("naive", AttentionImpl::Naive)] {
        dit.set_attention(attn);
        let (v, a) = dit
            .forward(&DitInput {
                x: &f.io("x"),
                text: &f.io("text"),
                actions: &f.io("actions"),
                timesteps: &timesteps,
                robot_ids: &ids,
            })
            .unwrap();
        check(&format!("dit video v ({name})"), &v, &f.io("video_v"));
        check(&format!("dit action v ({name})"), &a, &f.io("action_v"));
    }
}

fn run_sampler(name: &str, kind: SamplerKind) {
    let f = load(name);
    let wname = f.json["weights"].as_str().unwrap_or("dit_tiny").to_string();
    let w = load(&wname);
    let dit = load_dit(&w);
    let steps = f.json["steps"].as_u64().unwrap() as usize;
    let params = SamplerParams {
        kind,
        steps,
        guidance_scale: f.json["guidance_scale"].as_f64().unwrap(),
        guidance_exp: f.json["guidance_exp"].as_f64().unwrap(),
        dynamic_cfg: true,
    };
    let x_init = f.io("x_init");
    let (_, t, c, h, wd) = x_init.dims5().unwrap();
    let image = f.io("image_latent");
    let concat = Tensor::cat(&[&image, &Tensor::zeros((1, t - 1, c, h, wd), DType::F32, &Device::Cpu).unwrap()], 1).unwrap();
    let cond = Conditioning {
        text: f.io("text"),
        image_concat: concat,
        robot_id: ids_u32(&f.io("robot_ids"))[0],
    };
    let mut noise = vec![x_init, f.io("a_init")];
    if kind == SamplerKind::Dpmpp {
        let ev = f.io("eps_video");
        let ea = f.io("eps_action");
        for k in 0..ev.dim(0).unwrap() {
            noise.push(ev.get(k).unwrap());
            noise.push(ea.get(k).unwrap());
        }
    }
    let mut x0v = Vec::new();
    let mut x0a = Vec::new();
    let out = sampler::sample(&dit, &cond, &params, 1, &mut RecordedNoise::new(noise), &mut |e| {
        x0v.push(e.x0_video.clone());
        x0a.push(e.x0_action.clone());
        ControlFlow::Continue(())
    })
    .unwrap()
    .unwrap();
    let ref_x0v = f.io("x0_video");
    let ref_x0a = f.io("x0_action");
    assert_eq!(x0v.len(), ref_x0v.dim(0).unwrap(), "number of steps");
    for (i, (v, a)) in x0v.iter().zip(&x0a).enumerate() {
        check(&format!("{name} step {i} x0 video"), v, &ref_x0v.get(i).unwrap());
        check(&format!("{name} step {i} x0 action"), a, &ref_x0a.get(i).unwrap());
    }
    check(&format!("{name} final video"), &out.video, &f.io("video"));
    check(&format!("{name} final action"), &out.action, &f.io("action"));
}

#[test]
fn sampler_dpmpp_matches_reference() {
    run_sampler("sampler_dpmpp", SamplerKind::Dpmpp);
}

#[test]
fn sampler_ddim_matches_reference() {
    run_sampler("sampler_ddim", SamplerKind::Ddim);
}

#[test]
fn sampler_cancel_stops_within_one_step() {
    let w = load("dit_tiny");
    let dit = load_dit(&w);
    let cfg = dit.config().clone();
    let (t, c, h, wd) = (cfg.latent_frames, cfg.out_channels, cfg.latent_height, cfg.latent_width);
    let cond = Conditioning {
        text: Tensor::ones((1, cfg.text_length, cfg.text_hidden_size), DType::F32, &Device::Cpu).unwrap(),
        image_concat: Tensor::zeros((1, t, c, h, wd), DType::F32, &Device::Cpu).unwrap(),
        robot_id: 1,
    };
    let params = SamplerParams { steps: 10, ..Default::default() };
    let mut seen = 0;
    let out = sampler::sample(&dit, &cond, &params, 1, &mut sampler::SeededNoise::new(1), &mut |e| {
        seen += 1;
        if e.step == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
    .unwrap();
    assert!(out.is_none(), "cancelled run returns no result");
    assert_eq!(seen, 3, "no step runs after the cancel");
    // Same seed twice: bit-identical.
    let run = |seed| {
        sampler::sample(&dit, &cond, &params, 2, &mut sampler::SeededNoise::new(seed), &mut |_| ControlFlow::Continue(()))
            .unwrap()
            .unwrap()
    };
    let (a, b, other) = (run(5), run(5), run(6));
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(flat(&a.video), flat(&b.video));
    assert_eq!(flat(&a.action), flat(&b.action));
    assert_ne!(flat(&a.action), flat(&other.action));
}

#[test]
fn t5_encoder_matches_transformers() {
    let f = load("t5_tiny");
    let cfg: candle_transformers::models::t5::Config = f.config();
    let mut model = candle_transformers::models::t5::T5EncoderModel::load(f.vb(), &cfg).unwrap();
    let ids = f.io("input_ids").to_dtype(DType::U32).unwrap();
    let out = model.forward(&ids).unwrap();
    check("t5 encoder", &out, &f.io("hidden"));
}

#[test]
fn preprocessing_matches_torchvision() {
    let f = load("preprocess");
    let img = f.io("image_u8");
    let (h, w, _) = img.dims3().unwrap();
    let rgb: Vec<u8> = img.flatten_all().unwrap().to_vec1().unwrap();
    let reference = f.io("pixels");
    let size = reference.dim(1).unwrap();
    let out = videovla::model::preprocess::preprocess_rgb(&rgb, h, w, size);
    let out = Tensor::from_vec(out, (3, size, size), &Device::Cpu).unwrap();
    check("preprocess", &out, &reference);
}

#[test]
fn missing_or_misshaped_weight_is_named() {
    let f = load("dit_tiny");
    let cfg: DitConfig = f.config();
    let mut w = f.weights();
    w.remove("mixins.final_layer.action_linear.weight");
    let err = Dit::new(&cfg, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu)).err().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("action_linear.weight"), "{msg}");
    let mut w = f.weights();
    w.insert(
        "transformer.layers.0.attention.dense.weight".into(),
        Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap(),
    );
    let err = Dit::new(&cfg, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu)).err().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("attention.dense.weight") && msg.contains("[3, 5]"), "{msg}");
}

/// VAE parity (encode, chunked decode) against the diffusers-layout reference.
mod vae_parity {

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
}

/// The whole pipeline (tokenizer → T5 → preprocessing → VAE encode with a posterior sample →
/// guided sampling → chunked decode) on a model folder, replaying the reference's noise.
/// The fixture names its model folder (relative to tests/fixtures) and, for large clips, which
/// frames of the video it stored (`video_frames`).
fn pipeline_parity(fixture: &str) {
    use videovla::model::pipeline::{CancelToken, ImageLatent, PredictParams, VideoVla};
    let f = load(fixture);
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = fixtures.join(f.json["model"].as_str().unwrap());
    let mut model = VideoVla::load(&dir, &Device::Cpu).unwrap();
    // The trained sim model centres its latents (VAE `latent_shift`); the fixture says whether.
    assert_eq!(model.vae.has_latent_shift(), f.json["latent_shift"].as_bool().unwrap_or(false), "latent_shift presence");
    let img = f.io("image_u8");
    let (h, w, _) = img.dims3().unwrap();
    let image = image::RgbImage::from_raw(w as u32, h as u32, img.flatten_all().unwrap().to_vec1::<u8>().unwrap()).unwrap();
    let instruction = f.json["instruction"].as_str().unwrap();
    for (method, kind) in [("dpmpp", SamplerKind::Dpmpp), ("ddim", SamplerKind::Ddim)] {
        let io = |k: &str| f.io(&format!("{method}.{k}"));
        let mut noise = vec![io("eps_image"), io("x_init"), io("a_init")];
        if kind == SamplerKind::Dpmpp {
            let (ev, ea) = (io("eps_video"), io("eps_action"));
            for i in 0..ev.dim(0).unwrap() {
                noise.push(ev.get(i).unwrap());
                noise.push(ea.get(i).unwrap());
            }
        }
        let steps = f.json["steps"].as_u64().or_else(|| f.json["steps"][method].as_u64()).unwrap() as usize;
        let params = PredictParams {
            sampler: SamplerParams {
                kind,
                steps,
                guidance_scale: f.json["guidance_scale"].as_f64().unwrap(),
                guidance_exp: f.json["guidance_exp"].as_f64().unwrap(),
                dynamic_cfg: true,
            },
            robot_id: f.json["robot_id"].as_u64().unwrap() as u32,
            image_latent: ImageLatent::Sample,
            ..Default::default()
        };
        let mut steps_seen = 0;
        let pred = model
            .predict_with_noise(&image, instruction, &params, &mut RecordedNoise::new(noise), &mut |p| {
                if let videovla::model::pipeline::Progress::Step { .. } = p {
                    steps_seen += 1
                }
            }, &CancelToken::new())
            .unwrap();
        assert_eq!(steps_seen, params.sampler.steps);
        let tag = format!("{fixture} {method}");
        let (text, _) = model.text.encode(instruction).unwrap();
        check(&format!("{tag} text"), &text, &io("text"));
        let s = &pred.samples[0];
        check(&format!("{tag} latents"), &s.latents.unsqueeze(0).unwrap(), &io("latents"));
        let actions = Tensor::new(s.actions.clone(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        check(&format!("{tag} actions"), &actions, &io("actions"));
        // Decoded frames: compare the u8 frames with the reference video quantised the same way.
        let reference = videovla::model::pipeline::video_to_frames(&io("video")).unwrap();
        let indices: Vec<usize> = match f.json["video_frames"][method].as_array() {
            Some(list) => list.iter().map(|v| v.as_u64().unwrap() as usize).collect(),
            None => (0..s.frames.len()).collect(),
        };
        assert_eq!(indices.len(), reference[0].len(), "stored frame count");
        assert_eq!(s.frames.len(), model.num_frames());
        let (mut max_diff, mut sum, mut n) = (0i32, 0f64, 0usize);
        for (i, b) in indices.iter().zip(&reference[0]) {
            for (x, y) in s.frames[*i].as_raw().iter().zip(b.as_raw()) {
                let d = (*x as i32 - *y as i32).abs();
                max_diff = max_diff.max(d);
                sum += d as f64;
                n += 1;
            }
        }
        println!("parity {tag} frames {indices:?}: max |Δ| {max_diff} levels, mean {:.2e}", sum / n as f64);
        assert!(max_diff <= 1, "decoded frames differ by {max_diff} levels");
        assert_eq!(pred.observation.dimensions(), (model.config.image_size as u32, model.config.image_size as u32));
    }
}

#[test]
fn pipeline_matches_reference() {
    pipeline_parity("pipeline_tiny");
}

/// The embedded trained model (`models/tiny-sim`) through the Rust pipeline equals the PyTorch
/// reference on the exported weights (fixture written by `training/tiny_sim_fixture.py`).
#[test]
fn embedded_model_matches_reference() {
    pipeline_parity("tiny_sim_pipeline");
}
