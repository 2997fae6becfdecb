//! The released-weights path without the released files: `training/official_format.py` writes
//! tiny checkpoints in the official key names and pickle layouts (SAT DiT under
//! `{"module": ...}` with `model.diffusion_model.`, bf16; SAT `3d-vae.pt` under
//! `{"state_dict": ...}`) at test time; these tests convert them, load the result and compare
//! with the PyTorch reference run on the same (bf16-rounded) weights. Also: model sources in
//! a real Hugging Face cache layout built in a temp dir, and the CLI's one-line errors.
//!
//! Needs the reference's Python ($VIDEOVLA_PYTHON, else ~/.cache/videovla/venv; tests/run-all.sh
//! sets it up).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use videovla::convert::{convert, ConvertOptions, Kind};
use videovla::model::dit::{Dit, DitConfig, DitInput};
use videovla::model::hub::{self, HubFile, ModelSource};
use videovla::model::pipeline::{CancelToken, ModelConfig, PredictParams, VideoVla};
use videovla::model::vae::{AutoencoderKLCogVideoX, VaeConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("VIDEOVLA_PYTHON") {
        return p.into();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let venv = home.join(".cache/videovla/venv/bin/python");
    assert!(venv.is_file(), "no reference Python: set VIDEOVLA_PYTHON or run tests/run-all.sh");
    venv
}

/// Run `training/official_format.py WHAT --weights W --out OUT ARGS...`.
fn official(what: &str, weights: &Path, out: &Path, args: &[&str]) {
    let o = Command::new(python())
        .arg(root().join("training/official_format.py"))
        .args([what, "--weights"])
        .arg(weights)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("running the reference Python");
    assert!(o.status.success(), "official_format.py failed: {}", String::from_utf8_lossy(&o.stderr));
}

fn rel_err(out: &Tensor, reference: &Tensor) -> f64 {
    videovla::util::relative_error(out, reference).unwrap()
}

fn mmap(files: &[PathBuf]) -> VarBuilder<'static> {
    unsafe { VarBuilder::from_mmaped_safetensors(files, DType::F32, &Device::Cpu).unwrap() }
}

fn st(path: &Path) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn opts(config: &Path) -> ConvertOptions {
    ConvertOptions { config: Some(config.to_path_buf()), ..Default::default() }
}

fn dit_outputs(files: &[PathBuf]) -> (Tensor, Tensor) {
    let cfg: DitConfig = serde_json::from_value(
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(fixtures().join("dit_tiny.json")).unwrap()).unwrap()["config"].clone(),
    )
    .unwrap();
    let dit = Dit::new(&cfg, mmap(files)).unwrap();
    let io = st(&fixtures().join("dit_tiny.safetensors"));
    let timesteps: Vec<i64> = io["io.timesteps"].to_vec1().unwrap();
    let ids: Vec<u32> = io["io.robot_ids"].to_vec1::<i64>().unwrap().into_iter().map(|v| v as u32).collect();
    let ids = Tensor::new(ids, &Device::Cpu).unwrap();
    dit.forward(&DitInput { x: &io["io.x"], text: &io["io.text"], actions: &io["io.actions"], timesteps: &timesteps, robot_ids: &ids })
        .unwrap()
}

fn header_dtypes(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let t = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut d: Vec<String> = t.tensors().iter().map(|(_, v)| format!("{:?}", v.dtype())).collect();
    d.sort();
    d.dedup();
    d
}

#[test]
fn official_dit_checkpoint_converts_and_matches_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    for layout in ["module", "top", "state_dict"] {
        let src = tmp.path().join(layout);
        official("dit", &fixtures().join("dit_tiny"), &src, &["--layout", layout]);
        let out = tmp.path().join(format!("out-{layout}"));
        let r = convert(&src.join("dit.pt"), &out, &opts(&fixtures().join("dit_tiny.json"))).unwrap();
        assert_eq!(r.kind, Kind::Dit, "detected from the key names");
        assert_eq!(r.state_dict, if layout == "top" { "(top level)" } else { layout });
        let mut unused = r.unused.clone();
        unused.sort();
        assert_eq!(
            unused,
            ["mixins.pos_embed.freqs_cos", "mixins.pos_embed.freqs_sin", "transformer.position_embeddings.weight"]
                .map(|k| format!("model.diffusion_model.{k}"))
        );
        assert_eq!(r.files, ["transformer.safetensors"]);
        // bf16 kept as stored.
        assert_eq!(header_dtypes(&out.join("transformer.safetensors")), ["BF16"]);
        let (v, a) = dit_outputs(&[out.join("transformer.safetensors")]);
        let reference = st(&src.join("dit_ref.safetensors"));
        let (ev, ea) = (rel_err(&v, &reference["video_v"]), rel_err(&a, &reference["action_v"]));
        println!("convert dit ({layout}): {} tensors in {:.3} s; rel err video {ev:.2e}, action {ea:.2e}", r.tensors, r.seconds);
        assert!(ev < 1e-4 && ea < 1e-4, "{ev} {ea}");
        // The converted folder's config has the checkpoint's DiT section.
        let cfg: ModelConfig = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg.dit.hidden_size, 64);
        assert_eq!(cfg.files.transformer, ["transformer.safetensors"]);
    }
}

#[test]
fn cast_and_shards_give_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    official("dit", &fixtures().join("dit_tiny"), tmp.path(), &[]);
    let pt = tmp.path().join("dit.pt");
    let one = tmp.path().join("one");
    convert(&pt, &one, &opts(&fixtures().join("dit_tiny.json"))).unwrap();
    let many = tmp.path().join("many");
    let o = ConvertOptions { shard_bytes: 60_000, dtype: Some(DType::F32), ..opts(&fixtures().join("dit_tiny.json")) };
    let r = convert(&pt, &many, &o).unwrap();
    assert!(r.files.len() > 2, "{:?}", r.files);
    assert_eq!(r.files[0], format!("transformer-00001-of-{:05}.safetensors", r.files.len()));
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(many.join("transformer.safetensors.index.json")).unwrap()).unwrap();
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), r.tensors);
    let paths: Vec<PathBuf> = r.files.iter().map(|f| many.join(f)).collect();
    for p in &paths {
        assert_eq!(header_dtypes(p), ["F32"]);
        let n = std::fs::metadata(p).unwrap().len();
        let tensors = st(p);
        // Within the limit unless a single tensor is bigger.
        assert!(n <= 60_000 + 4096 || tensors.len() == 1, "{} is {n} bytes", p.display());
        for k in tensors.keys() {
            assert_eq!(map[k], p.file_name().unwrap().to_str().unwrap());
        }
    }
    assert_eq!(index["metadata"]["total_size"], r.bytes);
    // bf16 → f32 is exact, so the sharded f32 model computes exactly what the bf16 one does.
    let (v1, a1) = dit_outputs(&[one.join("transformer.safetensors")]);
    let (v2, a2) = dit_outputs(&paths);
    assert_eq!(rel_err(&v1, &v2), 0.0);
    assert_eq!(rel_err(&a1, &a2), 0.0);
    // Converting again into the same folder with one shard removes the stale shards.
    convert(&pt, &many, &opts(&fixtures().join("dit_tiny.json"))).unwrap();
    let mut left: Vec<String> = std::fs::read_dir(&many).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    left.sort();
    assert_eq!(left, ["config.json", "transformer.safetensors", "transformer.safetensors.index.json"]);
}

#[test]
fn sat_vae_converts_and_matches_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    official("vae", &fixtures().join("vae_tiny"), tmp.path(), &[]);
    let out = tmp.path().join("out");
    let r = convert(&tmp.path().join("3d-vae.pt"), &out, &opts(&fixtures().join("vae_tiny.json"))).unwrap();
    assert_eq!(r.kind, Kind::VaeSat);
    assert_eq!(r.state_dict, "state_dict");
    let mut unused = r.unused.clone();
    unused.sort();
    assert_eq!(unused, ["loss.discriminator.main.0.weight", "loss.logvar"]);
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    let cfg = VaeConfig::from_json_str(&std::fs::read_to_string(fixtures().join("vae_tiny.json")).unwrap()).unwrap();
    let vae = AutoencoderKLCogVideoX::new(&cfg, mmap(&[out.join("vae.safetensors")])).unwrap();
    let io = st(&fixtures().join("vae_tiny.safetensors"));
    let reference = st(&tmp.path().join("vae_ref.safetensors"));
    let (mean, _) = vae.encode(&io["io.image"]).unwrap();
    let decoded = vae.decode(&io["io.z"]).unwrap();
    let (em, ed) = (rel_err(&mean, &reference["image_mean"]), rel_err(&decoded, &reference["decoded"]));
    println!("convert vae: {} tensors in {:.3} s; rel err image mean {em:.2e}, decoded {ed:.2e}", r.tensors, r.seconds);
    assert!(em < 1e-4 && ed < 1e-4, "{em} {ed}");
}

/// The tiny model folder rebuilt from official-format files: DiT and SAT VAE converted, T5 and
/// tokenizer referenced by absolute path.
fn converted_tiny_model(tmp: &Path) -> PathBuf {
    let model = fixtures().join("tiny_model");
    official("dit", &model, tmp, &["--dtype", "f32"]);
    official("vae", &model, tmp, &["--dtype", "f32"]);
    let out = tmp.join("converted");
    let cfg = model.join("config.json");
    let r = convert(&tmp.join("dit.pt"), &out, &opts(&cfg)).unwrap();
    assert_eq!(r.kind, Kind::Dit);
    let r = convert(&tmp.join("3d-vae.pt"), &out, &ConvertOptions { kind: Some(Kind::VaeSat), ..opts(&cfg) }).unwrap();
    assert_eq!(r.files, ["vae.safetensors"]);
    let path = out.join("config.json");
    let mut c: ModelConfig = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    c.files.text_encoder = vec![model.join("text_encoder.safetensors").display().to_string()];
    c.files.tokenizer = model.join("tokenizer.json").display().to_string();
    std::fs::write(&path, serde_json::to_string_pretty(&c).unwrap()).unwrap();
    out
}

fn predict_actions(m: &mut VideoVla) -> (Vec<Vec<f32>>, Vec<image::RgbImage>) {
    let img = image::RgbImage::from_fn(72, 64, |x, y| image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x + y) * 3) as u8]));
    let p = PredictParams { seed: 9, ..m.default_params() };
    let pred = m.predict(&img, "pick up the red cube", &p, &mut |_| {}, &CancelToken::new()).unwrap();
    let s = pred.samples.into_iter().next().unwrap();
    (s.actions, s.frames)
}

#[test]
fn model_rebuilt_from_official_files_predicts_exactly_like_the_original() {
    let tmp = tempfile::tempdir().unwrap();
    let out = converted_tiny_model(tmp.path());
    let mut a = VideoVla::load(&fixtures().join("tiny_model"), &Device::Cpu).unwrap();
    let mut b = VideoVla::load(&out, &Device::Cpu).unwrap();
    assert_eq!(b.files.text_encoder, [fixtures().join("tiny_model/text_encoder.safetensors")]);
    let (aa, fa) = predict_actions(&mut a);
    let (ab, fb) = predict_actions(&mut b);
    assert_eq!(aa, ab, "f32 checkpoints convert losslessly, so the predictions are bit-identical");
    assert!(fa == fb);
}

/// A Hugging Face cache entry the way huggingface_hub writes it: the blob under its hash, the
/// snapshot file a relative symlink to it, refs/<rev> holding the commit.
fn cache_put(cache: &Path, repo: &str, rev: &str, commit: &str, file: &str, bytes: &[u8]) {
    use sha2::Digest;
    let r = cache.join(format!("models--{}", repo.replace('/', "--")));
    let hash = format!("{:x}", sha2::Sha256::digest(bytes));
    std::fs::create_dir_all(r.join("blobs")).unwrap();
    std::fs::write(r.join("blobs").join(&hash), bytes).unwrap();
    std::fs::create_dir_all(r.join("refs")).unwrap();
    std::fs::write(r.join("refs").join(rev), commit).unwrap();
    let link = r.join("snapshots").join(commit).join(file);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    let depth = file.matches('/').count() + 2;
    let target = format!("{}blobs/{hash}", "../".repeat(depth));
    std::os::unix::fs::symlink(target, &link).unwrap();
    assert_eq!(std::fs::read(&link).unwrap(), bytes);
}

/// The tiny T5 split into two shards, as the hub's text_encoder/ is.
fn split_t5(dir: &Path) -> Vec<Vec<u8>> {
    let t = st(&fixtures().join("tiny_model/text_encoder.safetensors"));
    let mut keys: Vec<&String> = t.keys().collect();
    keys.sort();
    let half = keys.len() / 2;
    [&keys[..half], &keys[half..]]
        .iter()
        .enumerate()
        .map(|(i, ks)| {
            let part: std::collections::HashMap<String, Tensor> = ks.iter().map(|k| ((*k).clone(), t[*k].clone())).collect();
            let p = dir.join(format!("t5-{i}.safetensors"));
            candle_core::safetensors::save(&part, &p).unwrap();
            std::fs::read(p).unwrap()
        })
        .collect()
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The default hub files (`hub` consts through `ModelConfig::released()`) in a cache in `tmp`.
fn hub_cache_with_released_parts(tmp: &Path) -> PathBuf {
    let cache = tmp.join("hf-cache");
    let released = ModelConfig::released().files;
    let model = fixtures().join("tiny_model");
    let vae = HubFile::parse(&released.vae[0]).unwrap();
    cache_put(&cache, &vae.repo.id, "main", COMMIT, &vae.path, &std::fs::read(model.join("vae.safetensors")).unwrap());
    for (entry, bytes) in released.text_encoder.iter().zip(split_t5(tmp)) {
        let f = HubFile::parse(entry).unwrap();
        cache_put(&cache, &f.repo.id, "main", COMMIT, &f.path, &bytes);
    }
    let tok = HubFile::parse(&released.tokenizer).unwrap();
    assert_eq!((tok.repo.id.as_str(), tok.path.as_str()), (hub::TOKENIZER_REPO, hub::TOKENIZER_FILE));
    cache_put(&cache, &tok.repo.id, "main", COMMIT, &tok.path, &std::fs::read(model.join("tokenizer.json")).unwrap());
    cache
}

#[test]
fn cache_lookup_follows_refs_and_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    cache_put(cache, "org/name", "main", COMMIT, "sub/dir/a.json", b"{}");
    cache_put(cache, "org/name", "v2", "fedcba9876543210fedcba9876543210fedcba98", "a.json", b"[]");
    let f = |s: &str| hub::cached_file(cache, &HubFile::parse(s).unwrap());
    assert_eq!(std::fs::read(f("hf:org/name/sub/dir/a.json").unwrap()).unwrap(), b"{}");
    assert_eq!(std::fs::read(f(&format!("hf:org/name@{COMMIT}/sub/dir/a.json")).unwrap()).unwrap(), b"{}");
    assert_eq!(std::fs::read(f("hf:org/name@v2/a.json").unwrap()).unwrap(), b"[]");
    assert!(f("hf:org/name/a.json").is_none(), "main has no a.json");
    assert!(f("hf:org/other/a.json").is_none());
    assert!(f("hf:org/name@v3/a.json").is_none());
    // ModelSource::Dir resolves relative entries in the folder, absolute ones as they are.
    let d = ModelSource::Dir(PathBuf::from("/m"));
    assert_eq!(d.resolve("x/y.safetensors").unwrap(), PathBuf::from("/m/x/y.safetensors"));
    assert_eq!(d.resolve("/abs/z").unwrap(), PathBuf::from("/abs/z"));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_videovla"))
}

fn test_image(dir: &Path) -> PathBuf {
    let p = dir.join("obs.png");
    image::RgbImage::from_fn(70, 60, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 90])).save(&p).unwrap();
    p
}

fn predict_cli(model: &str, out: &Path, image: &Path, cache: &Path) -> std::process::Output {
    bin()
        .args(["predict", "--instruction", "pick up the red cube", "--seed", "3", "--steps", "2", "--model", model])
        .arg("--image")
        .arg(image)
        .arg("--out")
        .arg(out)
        .env("HF_HUB_CACHE", cache)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("HF_HOME")
        .output()
        .unwrap()
}

fn one_line_error(o: &std::process::Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "stderr: {err}");
    assert_eq!(lines[0].lines().count(), 1);
    lines[0].to_string()
}

#[test]
fn models_resolve_through_the_hub_cache_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = hub_cache_with_released_parts(tmp.path());
    let image = test_image(tmp.path());
    // A converted folder referencing the released hub files: T5 (2 shards), VAE, tokenizer.
    let conv = converted_tiny_model(tmp.path());
    let path = conv.join("config.json");
    let mut c: ModelConfig = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let released = ModelConfig::released().files;
    c.files.vae = released.vae.clone();
    c.files.text_encoder = released.text_encoder.clone();
    c.files.tokenizer = released.tokenizer.clone();
    std::fs::write(&path, serde_json::to_string_pretty(&c).unwrap()).unwrap();
    std::fs::remove_file(conv.join("vae.safetensors")).unwrap();

    let reference = tmp.path().join("ref");
    let o = predict_cli(fixtures().join("tiny_model").to_str().unwrap(), &reference, &image, &cache);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let actions = |d: &Path| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(d.join("actions.json")).unwrap()).unwrap()["actions"].clone()
    };

    let from_folder = tmp.path().join("folder");
    let o = predict_cli(conv.to_str().unwrap(), &from_folder, &image, &cache);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(actions(&from_folder), actions(&reference));
    let manifest = std::fs::read_to_string(from_folder.join("prediction.json")).unwrap();
    assert!(manifest.contains("hf:THUDM/CogVideoX-5b-I2V/text_encoder/model-00002-of-00002.safetensors"), "{manifest}");
    // Hub blobs are named by their sha256: the manifest's hash is taken from the name, and it
    // is the real one.
    let vae = hub::cached_file(&cache, &HubFile::parse(&released.vae[0]).unwrap()).unwrap();
    let sha = hub::cached_sha256(&vae).expect("an LFS-style blob");
    assert_eq!(sha, videovla::export::sha256_file(&vae).unwrap());
    assert!(manifest.contains(&sha), "{manifest}");
    assert_eq!(hub::cached_sha256(&conv.join("transformer.safetensors")), None);

    // The whole model as a hub repo: relative entries resolve inside the repo's snapshot.
    for f in ["config.json", "transformer.safetensors"] {
        cache_put(&cache, "someone/videovla-tiny", "main", COMMIT, f, &std::fs::read(conv.join(f)).unwrap());
    }
    let from_hub = tmp.path().join("hub");
    let o = predict_cli("hf:someone/videovla-tiny", &from_hub, &image, &cache);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(actions(&from_hub), actions(&reference));

    // Not cached: a one-line error naming the download command, nothing written.
    let missing = tmp.path().join("missing");
    let o = predict_cli("hf:someone/not-there", &missing, &image, &cache);
    let e = one_line_error(&o);
    if cfg!(feature = "download") {
        assert!(e.contains("cannot reach http://127.0.0.1:9/someone/not-there/resolve/main/config.json"), "{e}");
    } else {
        assert!(e.contains("huggingface-cli download someone/not-there config.json"), "{e}");
    }
    assert!(!missing.exists());
    // Same through VideoVla::load_source, the library entry point, with an unset cache.
    std::fs::remove_dir_all(cache.join("models--google-t5--t5-11b")).unwrap();
    let o = predict_cli(conv.to_str().unwrap(), &missing, &image, &cache);
    let e = one_line_error(&o);
    assert!(e.contains("hf:google-t5/t5-11b/tokenizer.json"), "{e}");
    if !cfg!(feature = "download") {
        assert!(e.contains("is not in the Hugging Face cache"), "{e}");
    }
}

#[test]
fn bad_checkpoints_fail_with_one_line_errors_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    official("dit", &fixtures().join("dit_tiny"), tmp.path(), &[]);
    let pt = tmp.path().join("dit.pt");
    let bytes = std::fs::read(&pt).unwrap();
    let cfg = fixtures().join("dit_tiny.json");
    let out = tmp.path().join("out");
    let err = |from: &Path, o: &ConvertOptions| -> String {
        let e = format!("{:#}", convert(from, &out, o).unwrap_err());
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(), "{e}: something was written");
        e
    };
    let e = err(&tmp.path().join("nope.pt"), &opts(&cfg));
    assert!(e.contains("cannot open the checkpoint") && e.contains("nope.pt"), "{e}");
    let text = tmp.path().join("text.pt");
    std::fs::write(&text, "hello").unwrap();
    assert!(err(&text, &opts(&cfg)).contains("not a PyTorch checkpoint"));
    let legacy = tmp.path().join("legacy.pt");
    std::fs::write(&legacy, [0x80, 2, b'}', b'.']).unwrap();
    assert!(err(&legacy, &opts(&cfg)).contains("legacy"));
    let cut = tmp.path().join("cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let e = err(&cut, &opts(&cfg));
    assert!(e.contains("truncated or corrupt"), "{e}");
    // One flipped byte inside a tensor's data: the zip CRC catches it.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
    let (start, size) = (0..zip.len())
        .map(|i| {
            let f = zip.by_index(i).unwrap();
            (f.data_start().unwrap_or(0), f.size())
        })
        .max_by_key(|(_, s)| *s)
        .unwrap();
    let mut flipped = bytes.clone();
    flipped[(start + size / 2) as usize] ^= 0x55;
    let bad = tmp.path().join("flipped.pt");
    std::fs::write(&bad, flipped).unwrap();
    let e = err(&bad, &opts(&cfg));
    assert!(e.contains("truncated or corrupt") && e.contains("tensor"), "{e}");
    // The wrong architecture: the tensor, both shapes.
    let e = err(&pt, &opts(&fixtures().join("tiny_model/config.json")));
    assert!(e.contains("has shape [") && e.contains("the model expects ["), "{e}");
    // The wrong kind: missing tensors, named.
    let e = err(&pt, &ConvertOptions { kind: Some(Kind::VaeSat), ..opts(&fixtures().join("vae_tiny.json")) });
    assert!(e.contains("are missing (encoder.conv_in.conv.weight"), "{e}");
}

#[test]
fn cli_convert_reports_unused_keys_and_flops_prints_the_readme_figures() {
    let tmp = tempfile::tempdir().unwrap();
    official("dit", &fixtures().join("dit_tiny"), tmp.path(), &[]);
    let o = bin()
        .args(["convert", "--config"])
        .arg(fixtures().join("dit_tiny.json"))
        .arg("--from")
        .arg(tmp.path().join("dit.pt"))
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("state dict at module") && stdout.contains("unused keys (3)"), "{stdout}");
    // The checkpoint straight from the hub cache.
    let cache = tmp.path().join("cache");
    cache_put(&cache, hub::VIDEOVLA_REPO, "main", COMMIT, hub::VIDEOVLA_CHECKPOINT, &std::fs::read(tmp.path().join("dit.pt")).unwrap());
    let o = bin()
        .args(["convert", "--config"])
        .arg(fixtures().join("dit_tiny.json"))
        .arg("--from")
        .arg(hub::hf_entry(hub::VIDEOVLA_REPO, hub::VIDEOVLA_CHECKPOINT))
        .arg("--out")
        .arg(tmp.path().join("from-hub"))
        .env("HF_HUB_CACHE", &cache)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(tmp.path().join("from-hub/transformer.safetensors")).unwrap(), std::fs::read(tmp.path().join("out/transformer.safetensors")).unwrap());
    let o = bin().arg("flops").output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("| 3560 | 80.8 |") && stdout.contains("| 1256 | 25.5 |"), "{stdout}");
}

#[test]
fn predict_bad_inputs_are_one_line_errors_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_image(tmp.path());
    let model = fixtures().join("tiny_model");
    let cache = tmp.path().join("empty-cache");
    let out = tmp.path().join("out");
    // --device cuda in a CPU build
    if !candle_core::utils::cuda_is_available() {
        let o = bin()
            .args(["predict", "--instruction", "x", "--device", "cuda", "--model"])
            .arg(&model)
            .arg("--image")
            .arg(&image)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let e = one_line_error(&o);
        assert!(e.contains("no CUDA support") && e.contains("--features cuda"), "{e}");
        assert!(!out.exists());
    }
    // unreadable image
    let bad_image = tmp.path().join("not-an-image.png");
    std::fs::write(&bad_image, "text").unwrap();
    let e = one_line_error(&predict_cli(model.to_str().unwrap(), &out, &bad_image, &cache));
    assert!(e.contains("cannot read the image"), "{e}");
    assert!(!out.exists());
    // unwritable --out: below a regular file (permissions do not stop root)
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let e = one_line_error(&predict_cli(model.to_str().unwrap(), &file.join("out"), &image, &cache));
    assert!(e.contains("choose a writable --out"), "{e}");
    // corrupt weights
    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for f in std::fs::read_dir(&model).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), broken.join(f.file_name())).unwrap();
    }
    let w = broken.join("transformer.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() - 100]).unwrap();
    let e = one_line_error(&predict_cli(broken.to_str().unwrap(), &out, &image, &cache));
    assert!(e.contains("transformer.safetensors") && e.contains("corrupt or truncated"), "{e}");
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().starts_with(".tmp")), "{left:?}");
}

#[cfg(feature = "download")]
#[test]
fn download_fills_the_cache_and_resumes_after_a_dropped_connection() {
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let files = std::sync::Arc::new(std::sync::Mutex::new([("org/model/sub/w.safetensors".to_string(), content.clone())].into_iter().collect()));
    let (endpoint, log) = common::fake_hub::fake_hub(files, Some(("org/model/sub/w.safetensors".into(), 1_000_000)));
    std::env::set_var("HF_ENDPOINT", &endpoint);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    let file = HubFile::parse("hf:org/model/sub/w.safetensors").unwrap();
    let e = format!("{:#}", videovla::model::download::download(cache, &file).unwrap_err());
    assert!(e.contains("run again to resume"), "{e}");
    let blobs = cache.join("models--org--model/blobs");
    let partial = std::fs::read_dir(&blobs).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|e| e == "incomplete")).unwrap();
    let have = std::fs::metadata(&partial).unwrap().len();
    assert!(have > 0 && have < content.len() as u64, "{have}");
    let path = videovla::model::download::download(cache, &file).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert!(!partial.exists());
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(cache.join("models--org--model/refs/main")).unwrap(), COMMIT);
    // The result is an ordinary cache entry.
    assert_eq!(hub::cached_file(cache, &file).unwrap(), path);
    let log = log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.starts_with("GET") && l.ends_with(&format!("range=Some({have})"))), "{log:?}");
    println!("download: resumed at {have} of {} bytes; requests {log:?}", content.len());
}
