//! Where model files come from: local paths and the Hugging Face hub cache, plus the one place
//! that names the released repositories and files.
//!
//! A file entry of a model's `config.json` (`files.transformer[]`, `files.vae[]`, ...) is one of
//! * a relative path — inside the model folder (or, for a model on the hub, inside its repo);
//! * an absolute path;
//! * `hf:ORG/NAME[@REV]/PATH/IN/REPO` — a file of another hub repository.
//!
//! Hub files are looked up in the standard cache (`models--ORG--NAME/refs/REV` → commit,
//! `snapshots/COMMIT/PATH`), so a cached model runs fully offline. With the `download` cargo
//! feature a missing file is downloaded into that cache (progress bar, resumable); without it
//! the error says which `huggingface-cli download` command fetches it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The VideoVLA checkpoint (SAT pickle; convert it with `videovla convert`).
pub const VIDEOVLA_REPO: &str = "VideoVLA/VideoVLA_Cogvideobase_Pretrained";
pub const VIDEOVLA_CHECKPOINT: &str = "pretrain_ckpt_light.pt";
/// T5-XXL encoder and the VAE in diffusers layout.
pub const COGVIDEOX_REPO: &str = "THUDM/CogVideoX-5b-I2V";
pub const VAE_WEIGHTS: &[&str] = &["vae/diffusion_pytorch_model.safetensors"];
pub const T5_WEIGHTS: &[&str] =
    &["text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors"];
/// The hub's T5 v1.1 repos (and CogVideoX's `tokenizer/`) ship only `spiece.model`, which the
/// `tokenizers` crate cannot read. T5 v1.1 uses the original T5 vocabulary (32 000 pieces +
/// 100 sentinels), so the `tokenizer.json` of the original T5 gives the same ids.
pub const TOKENIZER_REPO: &str = "google-t5/t5-11b";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// `hf:REPO/FILE` entry for a model config.
pub fn hf_entry(repo: &str, file: &str) -> String {
    format!("hf:{repo}/{file}")
}

/// A hub repository at a revision (branch, tag or commit; `main` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRepo {
    pub id: String,
    pub revision: String,
}

/// One file of a hub repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    pub repo: HubRepo,
    pub path: String,
}

fn bad(spec: &str) -> anyhow::Error {
    anyhow::anyhow!("{spec:?} is not a hub reference; write hf:ORG/NAME[@REVISION][/PATH]")
}

/// Parse `hf:ORG/NAME[@REV][/PATH]` into the repo and the (possibly empty) path.
fn parse(spec: &str) -> anyhow::Result<(HubRepo, String)> {
    let rest = spec.strip_prefix("hf:").ok_or_else(|| bad(spec))?;
    let mut parts = rest.splitn(3, '/');
    let org = parts.next().unwrap_or("");
    let name_rev = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("").to_string();
    let (name, rev) = match name_rev.split_once('@') {
        Some((n, r)) => (n, r),
        None => (name_rev, "main"),
    };
    let ok = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['\\', ':']);
    if !ok(org) || !ok(name) || !ok(rev) {
        return Err(bad(spec));
    }
    if path.split('/').any(|c| c == "..") || path.starts_with('/') {
        return Err(bad(spec));
    }
    Ok((HubRepo { id: format!("{org}/{name}"), revision: rev.to_string() }, path))
}

impl HubRepo {
    /// `hf:ORG/NAME[@REV]` (no path).
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let (repo, path) = parse(spec)?;
        anyhow::ensure!(path.is_empty(), "{spec:?}: a model is a repository (hf:ORG/NAME[@REVISION]), not a file");
        Ok(repo)
    }

    pub fn file(&self, path: &str) -> HubFile {
        HubFile { repo: self.clone(), path: path.to_string() }
    }

    /// The cache folder name, `models--ORG--NAME`.
    pub fn cache_folder(&self) -> String {
        format!("models--{}", self.id.replace('/', "--"))
    }
}

impl HubFile {
    /// `hf:ORG/NAME[@REV]/PATH`.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let (repo, path) = parse(spec)?;
        anyhow::ensure!(!path.is_empty(), "{spec:?} names no file; write hf:ORG/NAME[@REVISION]/PATH");
        Ok(Self { repo, path })
    }
}

impl std::fmt::Display for HubFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.repo.revision == "main" {
            write!(f, "hf:{}/{}", self.repo.id, self.path)
        } else {
            write!(f, "hf:{}@{}/{}", self.repo.id, self.repo.revision, self.path)
        }
    }
}

/// The hub cache folder, in huggingface_hub's order: `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`,
/// `HF_HOME/hub`, `XDG_CACHE_HOME/huggingface/hub`, `~/.cache/huggingface/hub`.
pub fn cache_dir_with(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let get = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = get("HF_HUB_CACHE").or_else(|| get("HUGGINGFACE_HUB_CACHE")) {
        return p;
    }
    if let Some(p) = get("HF_HOME") {
        return p.join("hub");
    }
    if let Some(p) = get("XDG_CACHE_HOME") {
        return p.join("huggingface").join("hub");
    }
    get("HOME").unwrap_or_else(|| PathBuf::from(".")).join(".cache").join("huggingface").join("hub")
}

/// The hub cache of this process's environment.
pub fn cache_dir() -> PathBuf {
    cache_dir_with(|k| std::env::var_os(k))
}

fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A hub file in the cache at `cache`, or `None` when it is not there.
pub fn cached_file(cache: &Path, file: &HubFile) -> Option<PathBuf> {
    let repo = cache.join(file.repo.cache_folder());
    let rev = &file.repo.revision;
    let commit = if is_commit(rev) && repo.join("snapshots").join(rev).is_dir() {
        rev.clone()
    } else {
        std::fs::read_to_string(repo.join("refs").join(rev)).ok()?.trim().to_string()
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit == ".." {
        return None;
    }
    let path = repo.join("snapshots").join(commit).join(&file.path);
    path.is_file().then_some(path)
}

/// Observes hub downloads on the current thread: (file, bytes done, total bytes if known).
pub type DownloadObserver = Box<dyn FnMut(&str, u64, Option<u64>)>;

thread_local! {
    static OBSERVER: std::cell::RefCell<Option<DownloadObserver>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with `obs` told about every download chunk it causes on this thread (the engine
/// forwards them to the viewer's progress bar).
pub fn with_download_observer<R>(obs: DownloadObserver, f: impl FnOnce() -> R) -> R {
    let prev = OBSERVER.with(|o| o.borrow_mut().replace(obs));
    let r = f();
    OBSERVER.with(|o| *o.borrow_mut() = prev);
    r
}

/// Report download progress to this thread's observer, if any.
pub fn report_download(file: &str, done: u64, total: Option<u64>) {
    OBSERVER.with(|o| {
        if let Some(f) = o.borrow_mut().as_mut() {
            f(file, done, total)
        }
    });
}

/// A hub file: from the cache, else downloaded (with the `download` feature), else a one-line
/// error naming the command that fetches it.
pub fn get_file(file: &HubFile) -> anyhow::Result<PathBuf> {
    let cache = cache_dir();
    if let Some(p) = cached_file(&cache, file) {
        return Ok(p);
    }
    fetch(&cache, file)
}

#[cfg(feature = "download")]
fn fetch(cache: &Path, file: &HubFile) -> anyhow::Result<PathBuf> {
    super::download::download(cache, file)
}

#[cfg(not(feature = "download"))]
fn fetch(cache: &Path, file: &HubFile) -> anyhow::Result<PathBuf> {
    let rev = if file.repo.revision == "main" { String::new() } else { format!(" --revision {}", file.repo.revision) };
    anyhow::bail!(
        "{file} is not in the Hugging Face cache {}; fetch it with `huggingface-cli download {}{rev} {}` \
         (set HF_HUB_CACHE/HF_HOME if your cache is elsewhere) or build videovla with `--features download`",
        cache.display(),
        file.repo.id,
        file.path
    )
}

/// The sha256 of a file in the hub cache without reading it: Git-LFS files are stored under
/// `blobs/<sha256 of the content>`, and the snapshot entry is a symlink to that blob. `None`
/// for anything else (plain files, non-LFS blobs, whose name is a 40-digit git hash).
pub fn cached_sha256(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    let name = target.file_name()?.to_str()?;
    let parent = target.parent()?.file_name()?.to_str()?;
    (parent == "blobs" && name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) && path.is_file())
        .then(|| name.to_ascii_lowercase())
}

/// Where a model lives: a local folder or a hub repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Dir(PathBuf),
    Hub(HubRepo),
}

impl ModelSource {
    /// `hf:ORG/NAME[@REV]` or a folder path.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        if spec.starts_with("hf:") {
            Ok(Self::Hub(HubRepo::parse(spec)?))
        } else {
            Ok(Self::Dir(PathBuf::from(spec)))
        }
    }

    /// Resolve a file entry of this model's config (see the module docs) to a local path.
    /// Local paths are returned as they are (existence is the loader's check).
    pub fn resolve(&self, entry: &str) -> anyhow::Result<PathBuf> {
        if entry.starts_with("hf:") {
            return get_file(&HubFile::parse(entry)?);
        }
        let p = Path::new(entry);
        if p.is_absolute() {
            return Ok(p.to_path_buf());
        }
        match self {
            Self::Dir(d) => Ok(d.join(p)),
            Self::Hub(repo) => get_file(&repo.file(entry)).with_context(|| format!("model file {entry}")),
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(d) => write!(f, "{}", d.display()),
            Self::Hub(r) if r.revision == "main" => write!(f, "hf:{}", r.id),
            Self::Hub(r) => write!(f, "hf:{}@{}", r.id, r.revision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repo_revision_and_path() {
        let f = HubFile::parse("hf:THUDM/CogVideoX-5b-I2V/text_encoder/model-00001-of-00002.safetensors").unwrap();
        assert_eq!(f.repo.id, "THUDM/CogVideoX-5b-I2V");
        assert_eq!(f.repo.revision, "main");
        assert_eq!(f.path, "text_encoder/model-00001-of-00002.safetensors");
        let f = HubFile::parse("hf:org/name@v1.0/a/b.json").unwrap();
        assert_eq!((f.repo.revision.as_str(), f.path.as_str()), ("v1.0", "a/b.json"));
        assert_eq!(f.to_string(), "hf:org/name@v1.0/a/b.json");
        assert_eq!(HubRepo::parse("hf:org/name").unwrap().cache_folder(), "models--org--name");
        for bad in ["hf:org", "hf:/name", "org/name", "hf:org/name/../x", "hf:org/name@/x"] {
            assert!(HubFile::parse(bad).is_err(), "{bad}");
        }
        assert!(HubRepo::parse("hf:org/name/file").is_err());
        assert!(HubFile::parse("hf:org/name").is_err());
    }

    #[test]
    fn cache_dir_follows_the_huggingface_hub_order() {
        fn env(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
            let pairs = pairs.to_vec();
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
        }
        let all = [("HF_HUB_CACHE", "/a"), ("HUGGINGFACE_HUB_CACHE", "/b"), ("HF_HOME", "/c"), ("XDG_CACHE_HOME", "/d"), ("HOME", "/e")];
        assert_eq!(cache_dir_with(env(&all)), PathBuf::from("/a"));
        assert_eq!(cache_dir_with(env(&all[1..])), PathBuf::from("/b"));
        assert_eq!(cache_dir_with(env(&all[2..])), PathBuf::from("/c/hub"));
        assert_eq!(cache_dir_with(env(&all[3..])), PathBuf::from("/d/huggingface/hub"));
        assert_eq!(cache_dir_with(env(&all[4..])), PathBuf::from("/e/.cache/huggingface/hub"));
        // empty values are ignored, as in huggingface_hub
        assert_eq!(cache_dir_with(env(&[("HF_HUB_CACHE", ""), ("HF_HOME", "/c")])), PathBuf::from("/c/hub"));
    }
}
