//! `videovla convert`: the official PyTorch checkpoints → safetensors shards the loader mmaps.
//!
//! * DiT (`pretrain_ckpt_light.pt`): SAT names under `model.diffusion_model.`, state dict under
//!   `module`, `state_dict`, `model` or at the top level; the prefix is stripped.
//! * VAE (SAT `3d-vae.pt`, state dict under `state_dict`): SAT names mapped to diffusers'
//!   `AutoencoderKLCogVideoX` names (the rename table of diffusers'
//!   `scripts/convert_cogvideox_to_diffusers.py`, with `up.i → up_blocks.(n−1−i)`).
//!
//! Every tensor the Rust module reads ([`expected`]) must be in the file with its exact shape;
//! everything else is reported as unused (RoPE tables, `transformer.position_embeddings`,
//! VAE `loss.*`, ...). Tensors are streamed one at a time into shards of at most
//! `shard_bytes`, each written to a temporary file and renamed; then an index and the model's
//! `config.json` (created from the released template, or updated) are written.

pub mod expected;
pub mod pth;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle_core::DType;
use serde::Serialize;

use crate::model::dit::DitConfig;
use crate::model::pipeline::ModelConfig;
use crate::model::vae::VaeConfig;
use pth::{PthFile, PthTensor};

/// What a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Kind {
    /// The VideoVLA DiT (SAT names under `model.diffusion_model.`).
    Dit,
    /// The CogVideoX VAE in SAT layout (`3d-vae.pt`).
    VaeSat,
}

impl Kind {
    fn stem(self) -> &'static str {
        match self {
            Kind::Dit => "transformer",
            Kind::VaeSat => "vae",
        }
    }
}

pub const DIT_PREFIX: &str = "model.diffusion_model.";
/// Prefix of the VAE inside a full SAT model state dict.
pub const SAT_VAE_PREFIX: &str = "first_stage_model.";
/// Largest shard written (bytes).
pub const DEFAULT_SHARD_BYTES: u64 = 2 << 30;

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// `None`: detect from the key names.
    pub kind: Option<Kind>,
    /// Architecture: `None` = released; else a JSON file (the section itself, a fixture json
    /// with `"config"`, or a whole model config.json with `"dit"`/`"vae"`).
    pub config: Option<PathBuf>,
    /// Output dtype for float tensors; `None` keeps the stored one (bf16 as released).
    pub dtype: Option<DType>,
    pub shard_bytes: u64,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self { kind: None, config: None, dtype: None, shard_bytes: DEFAULT_SHARD_BYTES }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConvertReport {
    pub kind: Kind,
    /// Where the state dict was in the pickle.
    pub state_dict: String,
    pub tensors: usize,
    pub bytes: u64,
    /// Shard file names written (relative to the output folder).
    pub files: Vec<String>,
    /// Keys of the file the model does not read, as stored.
    pub unused: Vec<String>,
    /// State-dict entries that were not readable tensors (name: reason).
    pub skipped: Vec<String>,
    pub seconds: f64,
}

impl ConvertReport {
    /// The unused keys: all of them when few, else grouped by their first two components.
    pub fn unused_summary(&self) -> String {
        if self.unused.len() <= 8 {
            return self.unused.join(", ");
        }
        let mut groups: BTreeMap<String, usize> = BTreeMap::new();
        for k in &self.unused {
            let g: Vec<&str> = k.splitn(3, '.').collect();
            let key = if g.len() == 3 { format!("{}.{}.*", g[0], g[1]) } else { k.clone() };
            *groups.entry(key).or_default() += 1;
        }
        groups.into_iter().map(|(g, n)| format!("{g} ({n})")).collect::<Vec<_>>().join(", ")
    }
}

/// diffusers' SAT → diffusers VAE rename table (applied in this order), then `up.i`.
const VAE_RENAME: [(&str, &str); 9] = [
    ("block.", "resnets."),
    ("down.", "down_blocks."),
    ("downsample", "downsamplers.0"),
    ("upsample", "upsamplers.0"),
    ("nin_shortcut", "conv_shortcut"),
    ("encoder.mid.block_1", "encoder.mid_block.resnets.0"),
    ("encoder.mid.block_2", "encoder.mid_block.resnets.1"),
    ("decoder.mid.block_1", "decoder.mid_block.resnets.0"),
    ("decoder.mid.block_2", "decoder.mid_block.resnets.1"),
];

/// A SAT VAE key as diffusers names it (`levels` = number of resolution levels).
pub fn sat_vae_key_to_diffusers(key: &str, levels: usize) -> String {
    let mut k = key.to_string();
    for (a, b) in VAE_RENAME {
        k = k.replace(a, b);
    }
    if let Some(rest) = k.strip_prefix("decoder.up.") {
        if let Some((i, tail)) = rest.split_once('.') {
            if let Ok(i) = i.parse::<usize>() {
                if i < levels {
                    return format!("decoder.up_blocks.{}.{tail}", levels - 1 - i);
                }
            }
        }
    }
    k
}

/// Read a config section from a JSON file: the section itself, `{"config": ...}` (fixtures)
/// or a whole model config with the section under `key`.
fn config_section(path: &Path, key: &str) -> anyhow::Result<(serde_json::Value, Option<serde_json::Value>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read --config {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("--config {} is not valid JSON", path.display()))?;
    if let Some(s) = v.get(key).filter(|s| s.is_object()) {
        return Ok((s.clone(), Some(v)));
    }
    if let Some(s) = v.get("config").filter(|s| s.is_object()) {
        return Ok((s.clone(), None));
    }
    Ok((v, None))
}

fn detect_kind(file: &PthFile) -> anyhow::Result<Kind> {
    let names = || file.tensors.iter().map(|t| t.name.as_str());
    if names().any(|n| n.starts_with(DIT_PREFIX)) {
        return Ok(Kind::Dit);
    }
    if names().any(|n| {
        let n = n.strip_prefix(SAT_VAE_PREFIX).unwrap_or(n);
        n.starts_with("encoder.conv_in.") || n.starts_with("decoder.up.")
    }) {
        return Ok(Kind::VaeSat);
    }
    anyhow::bail!(
        "cannot tell what {} holds (no {DIT_PREFIX}* or SAT VAE keys among {} tensors); pass --kind dit or --kind vae-sat",
        file.path().display(),
        file.tensors.len()
    )
}

/// Shard plan: consecutive tensors while they fit in `max` bytes (a bigger tensor gets a shard
/// of its own).
fn plan_shards(sizes: &[u64], max: u64) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut acc) = (0, 0u64);
    for (i, &s) in sizes.iter().enumerate() {
        if i > start && acc + s > max {
            out.push(start..i);
            start = i;
            acc = 0;
        }
        acc += s;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

fn dtype_name(d: DType) -> anyhow::Result<&'static str> {
    Ok(match d {
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::F64 => "F64",
        DType::I64 => "I64",
        DType::U8 => "U8",
        other => anyhow::bail!("no safetensors name for {other:?}"),
    })
}

/// A tensor to write: target name, source tensor, output dtype.
struct Planned {
    name: String,
    src: PthTensor,
    dtype: DType,
}

impl Planned {
    fn bytes(&self) -> u64 {
        (self.src.numel() * self.dtype.size_in_bytes()) as u64
    }
}

/// Write one safetensors file: header (names sorted, data in the same order), then every
/// tensor streamed from the checkpoint.
fn write_shard(file: &mut PthFile, path: &Path, tensors: &mut [&Planned]) -> anyhow::Result<u64> {
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut off = 0u64;
    for t in tensors.iter() {
        let end = off + t.bytes();
        header.insert(
            t.name.to_string(),
            serde_json::json!({"dtype": dtype_name(t.dtype)?, "shape": t.src.shape, "data_offsets": [off, end]}),
        );
        off = end;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let f = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    w.write_all(&(h.len() as u64).to_le_bytes())?;
    w.write_all(&h)?;
    for t in tensors.iter() {
        let n = file.copy_tensor(&t.src, Some(t.dtype), &mut w)?;
        anyhow::ensure!(n == t.bytes(), "internal: {} wrote {n} bytes, planned {}", t.name, t.bytes());
    }
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok(off)
}

/// Convert `from` into the model folder `out` (created if needed). Nothing is renamed into
/// `out` unless every expected tensor was found with the right shape and written.
pub fn convert(from: &Path, out: &Path, opts: &ConvertOptions) -> anyhow::Result<ConvertReport> {
    let t0 = Instant::now();
    let mut file = PthFile::open(from)?;
    let kind = match opts.kind {
        Some(k) => k,
        None => detect_kind(&file)?,
    };
    let shown = from.display();
    // The architecture and the expected tensors.
    let (section, full_template, expected, cfg_name) = match kind {
        Kind::Dit => {
            let (v, full) = match &opts.config {
                Some(p) => config_section(p, "dit")?,
                None => (serde_json::to_value(DitConfig::released())?, None),
            };
            let cfg: DitConfig = serde_json::from_value(v.clone()).context("--config: not a DiT config")?;
            (serde_json::to_value(&cfg)?, full, expected::dit(&cfg)?, "dit")
        }
        Kind::VaeSat => {
            let (v, full) = match &opts.config {
                Some(p) => config_section(p, "vae")?,
                None => (serde_json::to_value(VaeConfig::released())?, None),
            };
            let cfg = VaeConfig::from_json_str(&v.to_string()).context("--config: not a VAE config")?;
            (v, full, expected::vae(&cfg)?, "vae")
        }
    };
    let levels = match kind {
        Kind::VaeSat => VaeConfig::from_json_str(&section.to_string())?.block_out_channels.len(),
        Kind::Dit => 0,
    };
    // Map every stored key to the Rust name.
    let has_dit_prefix = file.tensors.iter().any(|t| t.name.starts_with(DIT_PREFIX));
    let has_vae_prefix = file.tensors.iter().any(|t| t.name.starts_with(SAT_VAE_PREFIX));
    let target = |name: &str| -> Option<String> {
        match kind {
            Kind::Dit if has_dit_prefix => name.strip_prefix(DIT_PREFIX).map(str::to_string),
            Kind::Dit => Some(name.to_string()),
            Kind::VaeSat => {
                let n = if has_vae_prefix { name.strip_prefix(SAT_VAE_PREFIX)? } else { name };
                Some(sat_vae_key_to_diffusers(n, levels))
            }
        }
    };
    let mut by_target: HashMap<String, usize> = HashMap::new();
    for (i, t) in file.tensors.iter().enumerate() {
        if let Some(n) = target(&t.name) {
            if let Some(j) = by_target.insert(n.clone(), i) {
                anyhow::bail!("{shown}: {} and {} both map to {n}; the file is not a single state dict", file.tensors[j].name, t.name);
            }
        }
    }
    let mut missing = Vec::new();
    let mut used = HashSet::new();
    let mut planned = Vec::with_capacity(expected.len());
    for (name, shape) in &expected {
        match by_target.get(name) {
            None => missing.push(name.as_str()),
            Some(&i) => {
                let src = &file.tensors[i];
                anyhow::ensure!(
                    &src.shape == shape,
                    "{shown}: tensor {} has shape {:?}, the model expects {shape:?} (for {name}); the checkpoint does not match --config ({})",
                    src.name,
                    src.shape,
                    opts.config.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "released".into())
                );
                anyhow::ensure!(pth::is_float(src.dtype), "{shown}: tensor {} is {:?}, not a float tensor", src.name, src.dtype);
                used.insert(i);
                planned.push(Planned { name: name.clone(), src: src.clone(), dtype: opts.dtype.unwrap_or(src.dtype) });
            }
        }
    }
    if !missing.is_empty() {
        let show: Vec<&str> = missing.iter().take(5).copied().collect();
        anyhow::bail!(
            "{shown}: {} of the {} tensors the {} needs are missing ({}{}); is this the right file for --kind {}?",
            missing.len(),
            expected.len(),
            if kind == Kind::Dit { "DiT" } else { "VAE" },
            show.join(", "),
            if missing.len() > 5 { ", ..." } else { "" },
            if kind == Kind::Dit { "dit" } else { "vae-sat" }
        );
    }
    let unused: Vec<String> =
        file.tensors.iter().enumerate().filter(|(i, _)| !used.contains(i)).map(|(_, t)| t.name.clone()).collect();
    let skipped: Vec<String> = file.skipped.iter().map(|(n, why)| format!("{n}: {why}")).collect();

    // The model config: the existing one in `out`, else the given whole config, else released.
    let cfg_path = out.join("config.json");
    let mut config: ModelConfig = if cfg_path.is_file() {
        let text = std::fs::read_to_string(&cfg_path)?;
        serde_json::from_str(&text).with_context(|| format!("{} exists but is not a model config; remove it or choose another --out", cfg_path.display()))?
    } else if let Some(full) = full_template.and_then(|v| serde_json::from_value::<ModelConfig>(v).ok()) {
        full
    } else {
        ModelConfig::released()
    };
    match cfg_name {
        "dit" => config.dit = serde_json::from_value(section)?,
        _ => config.vae = section,
    }
    // The input resolution follows from the DiT's latent size and the VAE's spatial factor.
    if let Ok(vae) = serde_json::from_value::<VaeConfig>(config.vae.clone()) {
        config.image_size = config.dit.latent_height * (1 << vae.block_out_channels.len().saturating_sub(1));
    }
    // Write shards into temporaries, then rename them all.
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}; choose a writable --out", out.display()))?;
    let stem = kind.stem();
    let sizes: Vec<u64> = planned.iter().map(Planned::bytes).collect();
    let plan = plan_shards(&sizes, opts.shard_bytes.max(1));
    let names: Vec<String> = if plan.len() == 1 {
        vec![format!("{stem}.safetensors")]
    } else {
        (1..=plan.len()).map(|i| format!("{stem}-{i:05}-of-{:05}.safetensors", plan.len())).collect()
    };
    let tmp_of = |n: &str| out.join(format!(".{n}.tmp-{}", std::process::id()));
    let mut written = Vec::new();
    let mut total = 0u64;
    let mut weight_map = BTreeMap::new();
    let result = (|| -> anyhow::Result<()> {
        for (range, name) in plan.iter().zip(&names) {
            let tmp = tmp_of(name);
            written.push(tmp.clone());
            let mut shard: Vec<&Planned> = planned[range.clone()].iter().collect();
            total += write_shard(&mut file, &tmp, &mut shard)?;
            for t in &shard {
                weight_map.insert(t.name.clone(), name.clone());
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        for t in &written {
            let _ = std::fs::remove_file(t);
        }
        return Err(e);
    }
    // Stale shards of an earlier conversion with another shard count.
    if let Ok(rd) = std::fs::read_dir(out) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            let ours = n == format!("{stem}.safetensors")
                || (n.starts_with(&format!("{stem}-")) && n.ends_with(".safetensors") && n.contains("-of-"));
            if ours && !names.contains(&n) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    for (tmp, name) in written.iter().zip(&names) {
        std::fs::rename(tmp, out.join(name)).with_context(|| format!("cannot write {}", out.join(name).display()))?;
    }
    let index = serde_json::json!({
        "metadata": {
            "total_size": total,
            "source": from.file_name().map(|n| n.to_string_lossy().to_string()),
            "state_dict": file.location,
            "converted_by": concat!("videovla ", env!("CARGO_PKG_VERSION")),
        },
        "weight_map": weight_map,
    });
    crate::util::write_atomic(&out.join(format!("{stem}.safetensors.index.json")), &serde_json::to_vec_pretty(&index)?)?;

    match cfg_name {
        "dit" => config.files.transformer = names.clone(),
        _ => config.files.vae = names.clone(),
    }
    crate::util::write_atomic(&cfg_path, &serde_json::to_vec_pretty(&config)?)?;
    Ok(ConvertReport {
        kind,
        state_dict: file.location.clone(),
        tensors: planned.len(),
        bytes: total,
        files: names,
        unused,
        skipped,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sat_vae_names_follow_the_diffusers_table() {
        let m = |k| sat_vae_key_to_diffusers(k, 4);
        assert_eq!(m("encoder.down.0.block.1.conv1.conv.weight"), "encoder.down_blocks.0.resnets.1.conv1.conv.weight");
        assert_eq!(m("encoder.down.2.downsample.conv.weight"), "encoder.down_blocks.2.downsamplers.0.conv.weight");
        assert_eq!(m("encoder.down.1.block.0.nin_shortcut.conv.bias"), "encoder.down_blocks.1.resnets.0.conv_shortcut.conv.bias");
        assert_eq!(m("encoder.mid.block_2.norm1.weight"), "encoder.mid_block.resnets.1.norm1.weight");
        assert_eq!(m("decoder.mid.block_1.norm1.conv_y.conv.weight"), "decoder.mid_block.resnets.0.norm1.conv_y.conv.weight");
        assert_eq!(m("decoder.up.3.block.2.conv2.conv.weight"), "decoder.up_blocks.0.resnets.2.conv2.conv.weight");
        assert_eq!(m("decoder.up.1.upsample.conv.bias"), "decoder.up_blocks.2.upsamplers.0.conv.bias");
        assert_eq!(m("decoder.norm_out.norm_layer.weight"), "decoder.norm_out.norm_layer.weight");
        assert_eq!(m("loss.logvar"), "loss.logvar");
    }

    #[test]
    fn shards_never_exceed_the_limit_unless_one_tensor_does() {
        assert_eq!(plan_shards(&[3, 3, 3, 3], 6), vec![0..2, 2..4]);
        assert_eq!(plan_shards(&[3, 10, 3], 6), vec![0..1, 1..2, 2..3]);
        assert_eq!(plan_shards(&[1, 1, 1], 100), vec![0..3]);
        assert_eq!(plan_shards(&[], 100), Vec::<std::ops::Range<usize>>::new());
    }
}
