//! Behaviour of the shared predict pipeline on a small random model folder
//! (`tests/fixtures/tiny_model`, written by `training/pipeline_fixture.py`).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use videovla::model::pipeline::{CancelToken, Cancelled, PredictParams, Progress, VideoVla};
use videovla::model::sampler::{SamplerKind, SamplerParams};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_model")
}

fn load() -> VideoVla {
    VideoVla::load(&model_dir(), &Device::Cpu).unwrap()
}

fn image(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 13 % 256) as u8, (y * 29 % 256) as u8, ((x ^ y) % 256) as u8]))
}

fn params(seed: u64) -> PredictParams {
    PredictParams {
        sampler: SamplerParams { kind: SamplerKind::Dpmpp, steps: 3, ..Default::default() },
        seed,
        robot_id: 3,
        ..Default::default()
    }
}

fn run(m: &mut VideoVla, img: &image::RgbImage, text: &str, p: &PredictParams) -> anyhow::Result<videovla::model::pipeline::Prediction> {
    m.predict(img, text, p, &mut |_| {}, &CancelToken::new())
}

#[test]
fn same_seed_same_bits_other_seed_differs() {
    let mut m = load();
    let img = image(80, 60);
    let a = run(&mut m, &img, "pick up the red cube", &params(11)).unwrap();
    let b = run(&mut m, &img, "pick up the red cube", &params(11)).unwrap();
    let c = run(&mut m, &img, "pick up the red cube", &params(12)).unwrap();
    assert_eq!(a.samples[0].actions, b.samples[0].actions);
    assert!(a.samples[0].frames.iter().zip(&b.samples[0].frames).all(|(x, y)| x == y));
    assert_ne!(a.samples[0].actions, c.samples[0].actions);
    assert_eq!(a.samples[0].frames.len(), m.num_frames());
    assert_eq!(a.samples[0].actions.len(), 6);
    assert!(a.samples[0].actions.iter().all(|r| r.len() == 7));
    assert_eq!(a.timings.step_ms.len(), 3);
}

#[test]
fn several_samples_differ_from_each_other() {
    let mut m = load();
    let p = PredictParams { num_samples: 3, ..params(5) };
    let pred = run(&mut m, &image(64, 64), "lift the blue ball", &p).unwrap();
    assert_eq!(pred.samples.len(), 3);
    assert_ne!(pred.samples[0].actions, pred.samples[1].actions);
    assert_ne!(pred.samples[1].frames[8], pred.samples[2].frames[8]);
}

#[test]
fn any_image_size_and_aspect_is_accepted() {
    let mut m = load();
    for (w, h) in [(1, 1), (200, 3), (3, 200), (641, 479)] {
        let pred = run(&mut m, &image(w, h), "pick up the cube", &params(1)).unwrap();
        assert_eq!(pred.observation.dimensions(), (64, 64), "{w}x{h}");
    }
}

#[test]
fn long_instruction_is_truncated_not_rejected() {
    let mut m = load();
    let long = "put the red cube on the blue ball ".repeat(6);
    let pred = run(&mut m, &image(64, 64), &long, &params(1)).unwrap();
    assert_eq!(pred.truncated_from, Some(8 * 6 + 1));
    let short = run(&mut m, &image(64, 64), "pick up the cube", &params(1)).unwrap();
    assert_eq!(short.truncated_from, None);
}

#[test]
fn cancel_stops_within_one_step() {
    let mut m = load();
    let cancel = CancelToken::new();
    let mut steps = 0;
    let p = PredictParams { sampler: SamplerParams { steps: 20, ..params(1).sampler }, ..params(1) };
    let err = m
        .predict(&image(64, 64), "pick up the cube", &p, &mut |e| {
            if let Progress::Step { .. } = e {
                steps += 1;
                if steps == 2 {
                    cancel.cancel();
                }
            }
        }, &cancel)
        .unwrap_err();
    assert!(err.downcast_ref::<Cancelled>().is_some(), "{err:#}");
    assert_eq!(steps, 2);
}

#[test]
fn previews_are_decoded_on_request() {
    let mut m = load();
    // Every other latent frame plus the last, each decoded alone to one frame.
    let latent_frames = (m.num_frames() - 1) / 4 + 1;
    let frames = (0..latent_frames).step_by(2).count() + usize::from((latent_frames - 1) % 2 == 1);
    let mut previews = Vec::new();
    let mut sizes = Vec::new();
    let p = PredictParams { preview_every: 1, ..params(2) };
    m.predict(&image(64, 64), "pick up the cube", &p, &mut |e| {
        if let Progress::Step { step, preview, .. } = e {
            previews.push((step, preview.map(|f| f.len())));
            if let Some(f) = preview {
                sizes.extend(f.iter().map(|i| i.dimensions()));
            }
        }
    }, &CancelToken::new())
    .unwrap();
    assert_eq!(previews, vec![(0, Some(frames)), (1, Some(frames)), (2, Some(frames))]);
    let s = m.config.image_size as u32;
    assert!(sizes.iter().all(|&d| d == (s, s)), "{sizes:?}");
}

#[test]
fn bad_robot_id_and_steps_are_clear_errors() {
    let mut m = load();
    let e = run(&mut m, &image(8, 8), "x", &PredictParams { robot_id: 99, ..params(1) }).unwrap_err();
    assert!(e.to_string().contains("robot id 99"), "{e}");
    let mut p = params(1);
    p.sampler.steps = 0;
    let e = run(&mut m, &image(8, 8), "x", &p).unwrap_err();
    assert!(e.to_string().contains("steps must be"), "{e}");
}

fn copy_model(dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for f in std::fs::read_dir(model_dir()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
    }
}

#[test]
fn nan_weights_give_an_error_not_a_black_video() {
    let dir = tempfile::tempdir().unwrap();
    copy_model(dir.path());
    let path = dir.path().join("transformer.safetensors");
    let mut w = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let key = "mixins.final_layer.linear.bias";
    let shape = w[key].dims().to_vec();
    w.insert(key.into(), Tensor::full(f32::NAN, shape, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&w, &path).unwrap();
    let mut m = VideoVla::load(dir.path(), &Device::Cpu).unwrap();
    let e = run(&mut m, &image(64, 64), "pick up the cube", &params(1)).unwrap_err();
    assert!(format!("{e:#}").contains("non-finite"), "{e:#}");
}

#[test]
fn missing_truncated_or_misshaped_weights_fail_with_names() {
    let dir = tempfile::tempdir().unwrap();
    copy_model(dir.path());
    // truncated file
    let vae = dir.path().join("vae.safetensors");
    let bytes = std::fs::read(&vae).unwrap();
    std::fs::write(&vae, &bytes[..bytes.len() / 2]).unwrap();
    let e = format!("{:#}", VideoVla::load(dir.path(), &Device::Cpu).err().unwrap());
    assert!(e.contains("vae.safetensors") && e.contains("corrupt or truncated"), "{e}");
    // missing file
    std::fs::remove_file(&vae).unwrap();
    let e = format!("{:#}", VideoVla::load(dir.path(), &Device::Cpu).err().unwrap());
    assert!(e.contains("missing VAE weights"), "{e}");
    // mis-shaped tensor
    std::fs::write(&vae, &bytes).unwrap();
    let path = dir.path().join("transformer.safetensors");
    let mut w = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    w.insert("time_embed.2.weight".into(), Tensor::zeros((5, 2), candle_core::DType::F32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&w, &path).unwrap();
    let e = format!("{:#}", VideoVla::load(dir.path(), &Device::Cpu).err().unwrap());
    assert!(e.contains("time_embed.2.weight") && e.contains("[5, 2]"), "{e}");
    // no config at all
    let empty = tempfile::tempdir().unwrap();
    let e = format!("{:#}", VideoVla::load(empty.path(), &Device::Cpu).err().unwrap());
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn export_writes_every_file_and_they_decode() {
    use videovla::export::{export_prediction, ExportOptions, ModelInfo};
    let mut m = load();
    let pred = run(&mut m, &image(70, 50), "pick up the red cube", &PredictParams { num_samples: 2, ..params(4) }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let stats = videovla::action::ActionStats { q01: vec![-0.04; 7], q99: vec![0.04; 7], mask: Some(vec![true, true, true, true, true, true, false]) };
    let opts = ExportOptions { stats: Some(stats), ..Default::default() };
    export_prediction(&pred, &ModelInfo::default(), &out, &opts).unwrap();
    let n = m.num_frames();
    for s in ["sample-00", "sample-01"] {
        let d = out.join(s);
        let gif = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(std::fs::File::open(d.join("imagination.gif")).unwrap())).unwrap();
        use image::AnimationDecoder;
        assert_eq!(gif.into_frames().count(), n);
        let pngs = std::fs::read_dir(d.join("frames")).unwrap().count();
        assert_eq!(pngs, n);
        let first = image::open(d.join("frames/000.png")).unwrap().to_rgb8();
        assert_eq!(first, pred.samples[if s.ends_with('0') { 0 } else { 1 }].frames[0]);
        let actions: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("actions.json")).unwrap()).unwrap();
        assert_eq!(actions["actions"].as_array().unwrap().len(), 6);
        assert_eq!(actions["trajectory"].as_array().unwrap().len(), 7);
        assert!(actions["actions"][0]["axis_angle"].is_array());
        let csv = std::fs::read_to_string(d.join("actions.csv")).unwrap();
        assert_eq!(csv.lines().count(), 7);
        // The MP4 must open in a standard tool: ffprobe counts the H.264 frames.
        let probe = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=codec_name,nb_read_frames,width,height", "-of", "csv=p=0"])
            .arg(d.join("imagination.mp4"))
            .output()
            .expect("ffprobe is needed (tests/run-all.sh installs ffmpeg)");
        let text = String::from_utf8_lossy(&probe.stdout);
        assert!(probe.status.success(), "ffprobe: {}", String::from_utf8_lossy(&probe.stderr));
        assert_eq!(text.trim(), format!("h264,64,64,{n}"), "ffprobe says {text}");
    }
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("prediction.json")).unwrap()).unwrap();
    assert_eq!(manifest["params"]["seed"], 4);
    assert_eq!(manifest["samples"], 2);
    assert!(out.join("observation.png").is_file());
    // A second export into the same non-empty folder is refused and leaves it untouched.
    let before = std::fs::read(out.join("prediction.json")).unwrap();
    let e = export_prediction(&pred, &ModelInfo::default(), &out, &ExportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(std::fs::read(out.join("prediction.json")).unwrap(), before);
    // No temporary folders are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}
