//! Small shared helpers.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Write a file atomically: a temporary sibling, fsync, then rename over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().context("output path has no file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| -> anyhow::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("cannot write {}", path.display()))
}

/// ‖a − b‖ / ‖b‖ over all elements, in f64 (the parity tests' error measure).
pub fn relative_error(a: &candle_core::Tensor, b: &candle_core::Tensor) -> anyhow::Result<f64> {
    use candle_core::DType;
    anyhow::ensure!(a.dims() == b.dims(), "shapes differ: {:?} vs {:?}", a.dims(), b.dims());
    let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
    let num = (&a - &b)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    let den = b.sqr()?.sum_all()?.to_scalar::<f64>()?;
    anyhow::ensure!(den > 0.0, "the reference is all zeros");
    Ok((num / den).sqrt())
}
