//! Streaming reader for PyTorch checkpoints (`torch.save`, zip format): the pickle is parsed
//! with candle's unpickler for the tensor table only; tensor bytes are copied from the
//! (uncompressed) zip entries in small chunks, so memory stays at one chunk whatever the file
//! size.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::pickle::{Object, Stack};
use candle_core::DType;

/// One tensor of the state dict.
#[derive(Debug, Clone)]
pub struct PthTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Zip entry holding the storage.
    entry: String,
    /// Byte offset of the tensor inside its storage.
    offset: usize,
    storage_bytes: usize,
    contiguous: bool,
}

impl PthTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An opened checkpoint: its state dict's tensor table.
pub struct PthFile {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
    /// Where the state dict was found: `module`, `state_dict`, `model` or `(top level)`.
    pub location: String,
    /// Tensors in the order of the pickle.
    pub tensors: Vec<PthTensor>,
    /// State-dict entries that are not tensors this reader supports (name and why).
    pub skipped: Vec<(String, String)>,
}

const LOCATIONS: [&str; 3] = ["module", "state_dict", "model"];

fn is_tensor(v: &Object) -> bool {
    match v {
        Object::Reduce { callable, .. } => matches!(
            callable.as_ref(),
            Object::Class { module_name, class_name }
                if (module_name == "torch._utils" && (class_name == "_rebuild_tensor_v2" || class_name == "_rebuild_parameter"))
                    || (module_name == "torch._tensor" && class_name == "_rebuild_from_type_v2")
        ),
        _ => false,
    }
}

fn key_name(k: &Object) -> Option<&str> {
    match k {
        Object::Unicode(s) => Some(s),
        _ => None,
    }
}

impl PthFile {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let shown = path.display();
        let mut f = File::open(path).with_context(|| format!("cannot open the checkpoint {shown}; check the path"))?;
        let mut magic = [0u8; 4];
        let n = f.read(&mut magic).with_context(|| format!("cannot read {shown}"))?;
        if n < 4 || &magic != b"PK\x03\x04" {
            if n >= 1 && magic[0] == 0x80 {
                anyhow::bail!(
                    "{shown} is a legacy (pre-1.6) PyTorch pickle; re-save it with torch.save in PyTorch >= 1.6 (zip format) and convert that"
                );
            }
            anyhow::bail!("{shown} is not a PyTorch checkpoint (not a zip archive); give the .pt file written by torch.save");
        }
        let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
        let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
            anyhow::anyhow!("{shown} is truncated or corrupt (its zip directory is unreadable: {e}); download it again")
        })?;
        let pkl = zip
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .find(|n| n == "data.pkl" || n.ends_with("/data.pkl"))
            .with_context(|| format!("{shown} is a zip file but not a PyTorch checkpoint (no data.pkl)"))?;
        let dir = pkl.strip_suffix(".pkl").unwrap_or("data").to_string();
        let obj = {
            let entry = zip.by_name(&pkl).map_err(|e| anyhow::anyhow!("{shown}: cannot read {pkl}: {e}"))?;
            let mut r = BufReader::new(entry);
            let mut stack = Stack::empty();
            stack
                .read_loop(&mut r)
                .and_then(|_| stack.finalize())
                .map_err(|e| anyhow::anyhow!("{shown}: cannot parse the pickle {pkl} ({e}); the file is corrupt or not a state dict"))?
        };
        let Object::Dict(top) = obj else {
            anyhow::bail!("{shown} does not hold a dict (a whole pickled module?); save the state_dict() instead");
        };
        let has_tensors = |d: &[(Object, Object)]| d.iter().any(|(_, v)| is_tensor(v));
        let (location, dict) = if has_tensors(&top) {
            ("(top level)".to_string(), top)
        } else {
            let keys: Vec<String> = top.iter().filter_map(|(k, _)| key_name(k).map(str::to_string)).collect();
            let pos = LOCATIONS.iter().find_map(|loc| {
                top.iter().position(|(k, v)| key_name(k) == Some(loc) && matches!(v, Object::Dict(d) if has_tensors(d)))
            });
            let pos = pos.with_context(|| {
                format!("{shown} has no state dict (looked at the top level and under {LOCATIONS:?}; top-level keys: {keys:?})")
            })?;
            let (k, v) = top.into_iter().nth(pos).expect("found above");
            let Object::Dict(d) = v else { unreachable!("checked above") };
            (key_name(&k).unwrap_or_default().to_string(), d)
        };
        let dir_path = Path::new(&dir);
        let mut tensors = Vec::new();
        let mut skipped = Vec::new();
        for (k, v) in dict {
            let Some(name) = key_name(&k).map(str::to_string) else { continue };
            if !is_tensor(&v) {
                if name != "_metadata" {
                    skipped.push((name, "not a tensor".to_string()));
                }
                continue;
            }
            match v.into_tensor_info(k, dir_path) {
                Ok(Some(info)) => {
                    let shape = info.layout.shape().dims().to_vec();
                    tensors.push(PthTensor {
                        name,
                        dtype: info.dtype,
                        contiguous: info.layout.is_contiguous(),
                        offset: info.layout.start_offset(),
                        storage_bytes: info.storage_size * info.dtype.size_in_bytes(),
                        entry: info.path,
                        shape,
                    });
                }
                Ok(None) => skipped.push((name, "not a plain tensor".to_string())),
                Err(e) => skipped.push((name, e.to_string())),
            }
        }
        Ok(Self { path: path.to_path_buf(), zip, location, tensors, skipped })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stream one tensor's data to `w` as little-endian `to` values (`None` = as stored).
    pub fn copy_tensor(&mut self, t: &PthTensor, to: Option<DType>, w: &mut dyn Write) -> anyhow::Result<u64> {
        let shown = self.path.display();
        anyhow::ensure!(
            t.contiguous,
            "{shown}: tensor {} is stored non-contiguous; re-save the checkpoint with contiguous tensors",
            t.name
        );
        let from = t.dtype;
        let to = to.filter(|_| is_float(from)).unwrap_or(from);
        let esize = from.size_in_bytes();
        let nbytes = t.numel() * esize;
        anyhow::ensure!(
            t.offset + nbytes <= t.storage_bytes,
            "{shown}: tensor {} needs {} bytes but its storage has {}; the file is corrupt",
            t.name,
            t.offset + nbytes,
            t.storage_bytes
        );
        let mut entry = self.zip.by_name(&t.entry).map_err(|e| {
            anyhow::anyhow!("{shown}: cannot read the data of tensor {} ({}: {e}); the file is corrupt or compressed", t.name, t.entry)
        })?;
        let truncated = |e: std::io::Error| {
            anyhow::anyhow!("{shown}: the data of tensor {} is truncated or corrupt ({e}); download the file again", t.name)
        };
        std::io::copy(&mut (&mut entry).take(t.offset as u64), &mut std::io::sink()).map_err(truncated)?;
        const CHUNK: usize = 1 << 20;
        let mut buf = vec![0u8; CHUNK.min(nbytes.max(esize))];
        let mut left = nbytes;
        let mut written = 0u64;
        while left > 0 {
            let n = left.min(buf.len());
            entry.read_exact(&mut buf[..n]).map_err(truncated)?;
            if from == to {
                w.write_all(&buf[..n])?;
                written += n as u64;
            } else {
                let out = cast_le(&buf[..n], from, to)?;
                w.write_all(&out)?;
                written += out.len() as u64;
            }
            left -= n;
        }
        // Read the rest of the entry so the zip reader checks its CRC.
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(truncated)?;
        Ok(written)
    }
}

pub fn is_float(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

fn to_f32(src: &[u8], from: DType) -> anyhow::Result<Vec<f32>> {
    Ok(match from {
        DType::F32 => src.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        DType::F64 => src
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        DType::BF16 => src.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        DType::F16 => src.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => anyhow::bail!("cannot cast {other:?} tensors"),
    })
}

/// Cast little-endian float data (round to nearest even, as torch does).
pub fn cast_le(src: &[u8], from: DType, to: DType) -> anyhow::Result<Vec<u8>> {
    let v = to_f32(src, from)?;
    Ok(match to {
        DType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        DType::BF16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
        DType::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
        other => anyhow::bail!("cannot cast to {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_round_trip_exactly_where_representable() {
        let xs = [0.0f32, 1.0, -2.5, 3.140625, 65504.0, -1e-3];
        let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
        let bf = cast_le(&bytes, DType::F32, DType::BF16).unwrap();
        let back = cast_le(&bf, DType::BF16, DType::F32).unwrap();
        let back: Vec<f32> = back.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        for (a, b) in xs.iter().zip(&back) {
            assert_eq!(half::bf16::from_f32(*a).to_f32(), *b);
        }
        assert_eq!(back[..4], xs[..4]);
    }
}
