//! `videovla convert`: official PyTorch checkpoint → safetensors shards + config.json.

use std::path::PathBuf;

use crate::convert::{convert, ConvertOptions, Kind, DEFAULT_SHARD_BYTES};
use crate::model::hub::{get_file, HubFile};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutDtype {
    /// As stored (bf16 for the released files).
    Keep,
    Bf16,
    F16,
    F32,
}

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// The checkpoint (`pretrain_ckpt_light.pt`, `3d-vae.pt`), or a hub file
    /// `hf:ORG/NAME[@REV]/PATH` (taken from the Hugging Face cache).
    #[arg(long)]
    pub from: String,
    /// Model folder to write (created; an existing config.json there is updated).
    #[arg(long)]
    pub out: PathBuf,
    /// What the file holds (default: detected from its key names).
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// Architecture: `released`, or a JSON file (the dit/vae section, or a whole model config.json).
    #[arg(long, default_value = "released")]
    pub config: String,
    #[arg(long, value_enum, default_value = "keep")]
    pub dtype: OutDtype,
    /// Largest shard in bytes.
    #[arg(long, default_value_t = DEFAULT_SHARD_BYTES)]
    pub shard_bytes: u64,
}

pub fn run(a: ConvertArgs) -> anyhow::Result<()> {
    let from = if a.from.starts_with("hf:") { get_file(&HubFile::parse(&a.from)?)? } else { PathBuf::from(&a.from) };
    let opts = ConvertOptions {
        kind: a.kind,
        config: (a.config != "released").then(|| PathBuf::from(&a.config)),
        dtype: match a.dtype {
            OutDtype::Keep => None,
            OutDtype::Bf16 => Some(candle_core::DType::BF16),
            OutDtype::F16 => Some(candle_core::DType::F16),
            OutDtype::F32 => Some(candle_core::DType::F32),
        },
        shard_bytes: a.shard_bytes,
    };
    let r = convert(&from, &a.out, &opts)?;
    outln!(
        "converted {} ({:?}, state dict at {}): {} tensors, {:.1} MB in {} in {:.2} s",
        from.display(),
        r.kind,
        r.state_dict,
        r.tensors,
        r.bytes as f64 / 1e6,
        r.files.join(", "),
        r.seconds
    );
    if !r.unused.is_empty() {
        outln!("unused keys ({}): {}", r.unused.len(), r.unused_summary());
    }
    if !r.skipped.is_empty() {
        outln!("skipped entries ({}): {}", r.skipped.len(), r.skipped.join("; "));
    }
    outln!("wrote {}", a.out.join("config.json").display());
    Ok(())
}
