//! The one prediction pipeline used by the CLI, the viewer and the policy server:
//! image + instruction → T5 → VAE encode → joint video/action denoising → VAE decode.
//!
//! A model is a folder (`config.json` + safetensors + `tokenizer.json`, see [`ModelConfig`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::dit::{Dit, DitConfig};
use super::hub::ModelSource;
use super::preprocess;
use super::sampler::{self, check_finite, Conditioning, NoiseSource, SamplerParams, SeededNoise};
use super::text::TextEncoder;
use super::vae::{AutoencoderKLCogVideoX, VaeConfig};

/// `config.json` of a model folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Human-readable model name shown in the UI and written to manifests.
    pub name: String,
    /// Square input resolution (pixels).
    pub image_size: usize,
    /// Robot id used when the caller does not give one.
    #[serde(default)]
    pub default_robot_id: u32,
    pub dit: DitConfig,
    /// diffusers `AutoencoderKLCogVideoX` config.
    pub vae: serde_json::Value,
    /// transformers `T5Config`.
    pub text_encoder: serde_json::Value,
    /// Default sampler settings for this model.
    #[serde(default)]
    pub sampler: Option<SamplerParams>,
    #[serde(default)]
    pub files: ModelFiles,
    /// `dataset_statistics.json` (relative to the folder) to unnormalise the actions with.
    #[serde(default)]
    pub action_stats: Option<String>,
    /// Key inside the statistics file.
    #[serde(default)]
    pub unnorm_key: Option<String>,
    /// Video frames per prediction (informational; derived from the VAE and DiT configs).
    #[serde(default)]
    pub num_frames: Option<usize>,
}

impl ModelConfig {
    /// The released VideoVLA: the DiT converted from the official checkpoint into the model
    /// folder (`transformer.safetensors`), T5-XXL and the VAE from the hub repos named in
    /// [`super::hub`], 50 DPM++ steps with DynamicCFG 6.
    pub fn released() -> Self {
        use super::hub::{hf_entry, COGVIDEOX_REPO, T5_WEIGHTS, TOKENIZER_FILE, TOKENIZER_REPO, VAE_WEIGHTS};
        let dit = DitConfig::released();
        let vae = VaeConfig::released();
        Self {
            name: "VideoVLA (released checkpoint)".into(),
            image_size: dit.latent_height * (1 << (vae.block_out_channels.len() - 1)),
            default_robot_id: 0,
            dit,
            vae: serde_json::to_value(&vae).expect("VAE config serialises"),
            text_encoder: t5_v1_1_xxl_config(),
            sampler: Some(SamplerParams::default()),
            files: ModelFiles {
                transformer: vec!["transformer.safetensors".into()],
                vae: VAE_WEIGHTS.iter().map(|f| hf_entry(COGVIDEOX_REPO, f)).collect(),
                text_encoder: T5_WEIGHTS.iter().map(|f| hf_entry(COGVIDEOX_REPO, f)).collect(),
                tokenizer: hf_entry(TOKENIZER_REPO, TOKENIZER_FILE),
            },
            action_stats: None,
            unnorm_key: None,
            num_frames: Some(49),
        }
    }
}

/// `text_encoder/config.json` of the CogVideoX repos: google/t5-v1_1-xxl.
pub fn t5_v1_1_xxl_config() -> serde_json::Value {
    serde_json::json!({
        "d_ff": 10240, "d_kv": 64, "d_model": 4096, "decoder_start_token_id": 0,
        "dense_act_fn": "gelu_new", "dropout_rate": 0.1, "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0, "is_encoder_decoder": true,
        "is_gated_act": true, "layer_norm_epsilon": 1e-6, "model_type": "t5",
        "num_decoder_layers": 24, "num_heads": 64, "num_layers": 24, "pad_token_id": 0,
        "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,
        "tie_word_embeddings": false, "vocab_size": 32128
    })
}

/// The weight files of a model. Each entry is a path relative to the model folder (or hub
/// repo), an absolute path, or `hf:ORG/NAME[@REV]/PATH` (see [`super::hub`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFiles {
    pub transformer: Vec<String>,
    pub vae: Vec<String>,
    pub text_encoder: Vec<String>,
    pub tokenizer: String,
}

impl Default for ModelFiles {
    fn default() -> Self {
        Self {
            transformer: vec!["transformer.safetensors".into()],
            vae: vec!["vae.safetensors".into()],
            text_encoder: vec!["text_encoder.safetensors".into()],
            tokenizer: "tokenizer.json".into(),
        }
    }
}

/// Parse `cpu` / `cuda` / `cuda:N`.
pub fn device_from_name(name: &str) -> anyhow::Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        n if n == "cuda" || n.starts_with("cuda:") => {
            if !candle_core::utils::cuda_is_available() {
                anyhow::bail!(
                    "this build has no CUDA support; rebuild with `cargo build --release --features cuda` or use --device cpu"
                );
            }
            let ord = n.strip_prefix("cuda:").map(str::parse).transpose()?.unwrap_or(0);
            Ok(Device::new_cuda(ord)?)
        }
        other => anyhow::bail!("unknown device {other:?}; use cpu or cuda"),
    }
}

/// Working precision for a device: float32 on CPU, bfloat16 on CUDA (as released).
pub fn default_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::BF16
    }
}

/// The local paths of a model's files (hub entries resolved through the cache).
#[derive(Debug, Clone, Default)]
pub struct ResolvedFiles {
    pub transformer: Vec<PathBuf>,
    pub vae: Vec<PathBuf>,
    pub text_encoder: Vec<PathBuf>,
    pub tokenizer: PathBuf,
}

impl ResolvedFiles {
    fn resolve(source: &ModelSource, files: &ModelFiles) -> anyhow::Result<Self> {
        let all = |v: &[String]| v.iter().map(|f| source.resolve(f)).collect::<anyhow::Result<Vec<_>>>();
        Ok(Self {
            transformer: all(&files.transformer)?,
            vae: all(&files.vae)?,
            text_encoder: all(&files.text_encoder)?,
            tokenizer: source.resolve(&files.tokenizer)?,
        })
    }

    /// Every weight file with its config entry, for manifests.
    pub fn weights<'a>(&'a self, files: &'a ModelFiles) -> Vec<(&'a str, &'a Path)> {
        let names = files.transformer.iter().chain(&files.vae).chain(&files.text_encoder);
        let paths = self.transformer.iter().chain(&self.vae).chain(&self.text_encoder);
        names.map(String::as_str).zip(paths.map(PathBuf::as_path)).collect()
    }
}

fn mmap_vb(paths: &[PathBuf], dtype: DType, device: &Device, what: &str) -> anyhow::Result<VarBuilder<'static>> {
    for p in paths {
        anyhow::ensure!(
            p.is_file(),
            "missing {what} weights {}; the model folder is incomplete (re-export or re-download it)",
            p.display()
        );
        // Validate the header up front so a truncated file fails here with its name.
        check_safetensors(p)?;
    }
    // SAFETY: the files are memory-mapped read-only; they must not be modified while loaded.
    Ok(unsafe { VarBuilder::from_mmaped_safetensors(paths, dtype, device)? })
}

/// Check a safetensors file's header and that the data the header promises is all there,
/// without reading the data (memory-mapped).
fn check_safetensors(p: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
    // SAFETY: read-only map, dropped before returning.
    let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("reading {}", p.display()))?;
    safetensors::SafeTensors::deserialize(&map).map_err(|e| {
        anyhow::anyhow!("{} is not a valid safetensors file ({e}); it is corrupt or truncated, re-export or re-download it", p.display())
    })?;
    Ok(())
}

/// A loaded model: text encoder, VAE and DiT on one device.
pub struct VideoVla {
    pub config: ModelConfig,
    /// The folder holding config.json (for a hub model: its snapshot folder in the cache).
    pub dir: PathBuf,
    pub source: ModelSource,
    /// Local paths of the weight files actually loaded.
    pub files: ResolvedFiles,
    pub text: TextEncoder,
    pub vae: AutoencoderKLCogVideoX,
    pub dit: Dit,
    device: Device,
}

impl VideoVla {
    /// Load a model folder (see [`Self::load_source`]).
    pub fn load(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        Self::load_source(&ModelSource::Dir(dir.to_path_buf()), device)
    }

    /// Load a model from a folder or a hub repository: config.json, then every file entry
    /// resolved (relative to the folder/repo, absolute, or `hf:` from the hub cache) and
    /// memory-mapped.
    pub fn load_source(source: &ModelSource, device: &Device) -> anyhow::Result<Self> {
        let cfg_path = source.resolve("config.json")?;
        let raw = std::fs::read_to_string(&cfg_path).with_context(|| {
            format!("cannot read {}; --model must be a folder with config.json and the weights", cfg_path.display())
        })?;
        let dir = cfg_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let config: ModelConfig = serde_json::from_str(&raw)
            .with_context(|| format!("{} is not a valid model config", cfg_path.display()))?;
        let dtype = default_dtype(device);
        config.dit.validate()?;
        let t5_cfg: candle_transformers::models::t5::Config =
            serde_json::from_value(config.text_encoder.clone()).context("text_encoder config")?;
        let vae_cfg: VaeConfig = serde_json::from_value(config.vae.clone()).context("vae config")?;
        vae_cfg.validate()?;
        let files = ResolvedFiles::resolve(source, &config.files)?;
        let tokenizer = TextEncoder::load_tokenizer(&files.tokenizer)?;
        // T5 runs in float32 on CPU; on CUDA in bf16 like the official code.
        let text = TextEncoder::new(
            &t5_cfg,
            mmap_vb(&files.text_encoder, dtype, device, "text encoder")?,
            tokenizer,
            config.dit.text_length,
        )?;
        let vae = AutoencoderKLCogVideoX::new(&vae_cfg, mmap_vb(&files.vae, dtype, device, "VAE")?)
            .context("loading the VAE")?;
        let dit = Dit::new(&config.dit, mmap_vb(&files.transformer, dtype, device, "transformer")?)
            .context("loading the transformer")?;
        Ok(Self {
            config,
            dir,
            source: source.clone(),
            files,
            text,
            vae,
            dit,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of video frames a prediction has (49 as released).
    pub fn num_frames(&self) -> usize {
        self.vae.config().frames_for_latents(self.config.dit.latent_frames)
    }

    /// The action statistics named by the config, if any.
    pub fn action_stats(&self) -> anyhow::Result<Option<crate::action::ActionStats>> {
        match &self.config.action_stats {
            Some(f) => Ok(Some(crate::action::ActionStats::load(&self.source.resolve(f)?, self.config.unnorm_key.as_deref())?)),
            None => Ok(None),
        }
    }

    pub fn default_params(&self) -> PredictParams {
        PredictParams {
            sampler: self.config.sampler.clone().unwrap_or_default(),
            robot_id: self.config.default_robot_id,
            ..Default::default()
        }
    }
}

/// How the image latent is taken from the VAE posterior.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageLatent {
    /// A posterior sample, as the released code does (its regulariser samples).
    #[default]
    Sample,
    /// The posterior mean.
    Mean,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictParams {
    pub sampler: SamplerParams,
    pub seed: u64,
    pub num_samples: usize,
    pub robot_id: u32,
    pub image_latent: ImageLatent,
    /// Decode a preview of x̂₀ (first sample; every other latent frame, see
    /// [`VideoVla::decode_preview`]) every this many steps and at the last step; 0 = never.
    pub preview_every: usize,
    /// Decode the final latents to frames (actions alone do not need it).
    pub decode: bool,
}

impl Default for PredictParams {
    fn default() -> Self {
        Self {
            sampler: SamplerParams::default(),
            seed: 0,
            num_samples: 1,
            robot_id: 0,
            image_latent: ImageLatent::Sample,
            preview_every: 0,
            decode: true,
        }
    }
}

/// A progress report from `predict`.
pub enum Progress<'a> {
    Stage(Stage),
    Step {
        step: usize,
        steps: usize,
        elapsed_ms: f64,
        /// Decoded x̂₀ of the first sample, when requested.
        preview: Option<&'a [image::RgbImage]>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Text,
    Encode,
    Denoise,
    Decode,
}

/// Shared flag to stop a running prediction (checked between stages and after every step).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst)
    }
}

/// The error returned when a prediction was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("prediction cancelled")]
pub struct Cancelled;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub text_ms: f64,
    pub encode_ms: f64,
    pub step_ms: Vec<f64>,
    pub decode_ms: f64,
    pub total_ms: f64,
}

/// One sample of a prediction.
#[derive(Debug, Clone)]
pub struct SamplePrediction {
    /// Decoded frames (empty when `decode` was off).
    pub frames: Vec<image::RgbImage>,
    /// Raw actions, `action_length` rows of `action_dim`.
    pub actions: Vec<Vec<f32>>,
    /// Latents (T, C, h, w) as sampled (× scale factor).
    pub latents: Tensor,
}

#[derive(Debug, Clone)]
pub struct Prediction {
    pub instruction: String,
    /// The image exactly as the model saw it (after resize and crop).
    pub observation: image::RgbImage,
    pub samples: Vec<SamplePrediction>,
    pub params: PredictParams,
    pub timings: Timings,
    /// Token count before truncation when the instruction was too long.
    pub truncated_from: Option<usize>,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// (K, 3, T, H, W) in [-1, 1] → K lists of RGB frames.
pub fn video_to_frames(video: &Tensor) -> anyhow::Result<Vec<Vec<image::RgbImage>>> {
    let v = ((video.to_dtype(DType::F32)?.clamp(-1f32, 1f32)? + 1.0)? * 127.5)?
        .round()?
        .to_dtype(DType::U8)?
        .permute((0, 2, 3, 4, 1))?
        .contiguous()?; // K, T, H, W, 3
    let (k, t, h, w, _) = v.dims5()?;
    let mut out = Vec::with_capacity(k);
    for i in 0..k {
        let mut frames = Vec::with_capacity(t);
        for j in 0..t {
            let data: Vec<u8> = v.get(i)?.get(j)?.flatten_all()?.to_vec1()?;
            frames.push(image::RgbImage::from_raw(w as u32, h as u32, data).expect("frame size"));
        }
        out.push(frames);
    }
    Ok(out)
}

impl VideoVla {
    /// Decode DiT latents (K, T, C, h, w) (× scale factor) to frames.
    pub fn decode_latents(&self, latents: &Tensor) -> anyhow::Result<Vec<Vec<image::RgbImage>>> {
        let mut all = Vec::new();
        for i in 0..latents.dim(0)? {
            let z = self.vae.from_dit_latent(&latents.narrow(0, i, 1)?.permute((0, 2, 1, 3, 4))?.contiguous()?)?;
            let video = self.vae.decode(&z.to_dtype(self.dit.dtype())?)?;
            check_finite(&video, "decoded video")?;
            all.extend(video_to_frames(&video)?);
        }
        Ok(all)
    }

    /// A cheap preview of DiT latents (1, T, C, h, w) × scale: every `stride`-th latent frame
    /// (and the last) decoded on its own as a one-frame clip, all in one batched decoder call —
    /// about `T / stride` frames of decoding instead of 49. Each preview frame is the latent's
    /// first-frame reading (the causal VAE decodes a lone latent to one frame), so it shows the
    /// imagined scene at 4·stride-frame intervals, not the exact decoded clip.
    pub fn decode_preview(&self, latents: &Tensor, stride: usize) -> anyhow::Result<Vec<image::RgbImage>> {
        let t = latents.dim(1)?;
        let mut idx: Vec<u32> = (0..t).step_by(stride.max(1)).map(|i| i as u32).collect();
        if idx.last() != Some(&(t as u32 - 1)) {
            idx.push(t as u32 - 1);
        }
        let ids = Tensor::new(idx.as_slice(), latents.device())?;
        // (1, T, C, h, w) -> (k, C, 1, h, w): k independent single-latent clips.
        let z = latents.narrow(0, 0, 1)?.squeeze(0)?.index_select(&ids, 0)?.unsqueeze(2)?;
        let z = self.vae.from_dit_latent(&z.contiguous()?)?;
        let video = self.vae.decode(&z.to_dtype(self.dit.dtype())?)?;
        check_finite(&video, "decoded preview")?;
        Ok(video_to_frames(&video)?.into_iter().flatten().collect())
    }

    /// Encode the preprocessed observation to the conditioning latent (1, 1, C, h, w) × scale.
    fn image_latent(&self, pixels: &Tensor, mode: ImageLatent, noise: &mut dyn NoiseSource) -> anyhow::Result<Tensor> {
        let (mean, logvar) = self.vae.encode(&pixels.to_dtype(self.dit.dtype())?)?;
        let mean = mean.to_dtype(DType::F32)?;
        let z = match mode {
            ImageLatent::Mean => mean,
            ImageLatent::Sample => {
                let std = (logvar.to_dtype(DType::F32)? * 0.5)?.exp()?;
                let eps = noise.normal(mean.dims(), &self.device)?;
                (mean + (std * eps)?)?
            }
        };
        let z = self.vae.to_dit_latent(&z)?;
        Ok(z.permute((0, 2, 1, 3, 4))?.contiguous()?)
    }

    /// Predict the imagined video and the action chunk for one observation and instruction.
    /// Noise comes from a ChaCha8 stream seeded with `params.seed` (same seed, same output).
    pub fn predict(
        &mut self,
        image: &image::RgbImage,
        instruction: &str,
        params: &PredictParams,
        progress: &mut dyn FnMut(Progress),
        cancel: &CancelToken,
    ) -> anyhow::Result<Prediction> {
        let mut noise = SeededNoise::new(params.seed);
        self.predict_with_noise(image, instruction, params, &mut noise, progress, cancel)
    }

    /// `predict` with an explicit noise source. Draw order: image-posterior ε (when
    /// sampling the posterior), initial video, initial actions, then the sampler's per-step noise.
    pub fn predict_with_noise(
        &mut self,
        image: &image::RgbImage,
        instruction: &str,
        params: &PredictParams,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress),
        cancel: &CancelToken,
    ) -> anyhow::Result<Prediction> {
        params.sampler.validate()?;
        anyhow::ensure!(
            (params.robot_id as usize) < self.config.dit.num_robot_ids,
            "robot id {} is out of range; this model knows ids 0..{}",
            params.robot_id,
            self.config.dit.num_robot_ids - 1
        );
        anyhow::ensure!(
            (1..=64).contains(&params.num_samples),
            "number of samples must be between 1 and 64"
        );
        anyhow::ensure!(image.width() > 0 && image.height() > 0, "the image is empty");
        let total = Instant::now();
        let mut timings = Timings::default();
        let check_cancel = || if cancel.is_cancelled() { Err(Cancelled) } else { Ok(()) };

        progress(Progress::Stage(Stage::Text));
        let t0 = Instant::now();
        let (text_emb, tokens) = self.text.encode(instruction)?;
        check_finite(&text_emb, "text embedding")?;
        timings.text_ms = ms(t0);
        check_cancel()?;

        progress(Progress::Stage(Stage::Encode));
        let t0 = Instant::now();
        let size = self.config.image_size;
        let observation = preprocess::model_view(image, size);
        let pixels = preprocess::image_tensor(image, size, &self.device)?;
        let img_latent = self.image_latent(&pixels, params.image_latent, noise)?;
        let (_, _, c, h, w) = img_latent.dims5()?;
        let t = self.config.dit.latent_frames;
        let concat = if t > 1 {
            Tensor::cat(&[&img_latent, &Tensor::zeros((1, t - 1, c, h, w), DType::F32, &self.device)?], 1)?
        } else {
            img_latent
        };
        timings.encode_ms = ms(t0);
        check_cancel()?;

        progress(Progress::Stage(Stage::Denoise));
        let cond = Conditioning {
            text: text_emb,
            image_concat: concat,
            robot_id: params.robot_id,
        };
        let mut step_ms = Vec::new();
        let mut last = Instant::now();
        let denoise_start = Instant::now();
        let mut preview_err = None;
        let this = &*self;
        let out = sampler::sample(&this.dit, &cond, &params.sampler, params.num_samples, noise, &mut |e| {
            step_ms.push(ms(last));
            last = Instant::now();
            let want_preview = params.preview_every > 0
                && (e.step % params.preview_every == 0 || e.step + 1 == e.steps);
            let preview = if want_preview {
                match this.decode_preview(&e.x0_video, 2) {
                    Ok(v) => Some(v),
                    Err(err) => {
                        preview_err = Some(err);
                        None
                    }
                }
            } else {
                None
            };
            progress(Progress::Step {
                step: e.step,
                steps: e.steps,
                elapsed_ms: ms(denoise_start),
                preview: preview.as_deref(),
            });
            if cancel.is_cancelled() || preview_err.is_some() {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })?;
        if let Some(err) = preview_err {
            return Err(err.context("decoding the preview"));
        }
        let out = out.ok_or(Cancelled)?;
        timings.step_ms = step_ms;
        check_cancel()?;

        let t0 = Instant::now();
        let frames = if params.decode {
            progress(Progress::Stage(Stage::Decode));
            self.decode_latents(&out.video)?
        } else {
            vec![Vec::new(); params.num_samples]
        };
        timings.decode_ms = ms(t0);
        timings.total_ms = ms(total);

        let actions = out.action.to_dtype(DType::F32)?;
        let mut samples = Vec::new();
        for (i, frames) in frames.into_iter().enumerate() {
            samples.push(SamplePrediction {
                frames,
                actions: actions.get(i)?.to_vec2::<f32>()?,
                latents: out.video.get(i)?,
            });
        }
        Ok(Prediction {
            instruction: instruction.to_string(),
            observation,
            samples,
            params: params.clone(),
            timings,
            truncated_from: tokens.truncated_from,
        })
    }
}
