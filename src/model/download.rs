//! Downloading hub files into the Hugging Face cache (cargo feature `download`).
//!
//! The same layout huggingface_hub writes, so both share one cache: the metadata request
//! (`HEAD …/resolve/REV/PATH`, redirects not followed) gives the commit (`X-Repo-Commit`) and
//! the blob id (`X-Linked-Etag` for LFS files, else `ETag`); the data goes to
//! `blobs/ID.incomplete`, resumed with a `Range` request when a previous download stopped,
//! then is renamed to `blobs/ID`; `snapshots/COMMIT/PATH` becomes a relative symlink to it and
//! `refs/REV` records the commit. `HF_ENDPOINT` overrides `https://huggingface.co`; `HF_TOKEN`
//! (or the token file huggingface-cli login writes) authenticates gated repos.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::hub::HubFile;

fn endpoint() -> String {
    std::env::var("HF_ENDPOINT").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "https://huggingface.co".into())
}

fn token() -> Option<String> {
    if let Some(t) = std::env::var("HF_TOKEN").ok().filter(|s| !s.is_empty()) {
        return Some(t);
    }
    let path = std::env::var_os("HF_TOKEN_PATH").map(PathBuf::from).or_else(|| {
        let home = std::env::var_os("HF_HOME").map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("huggingface"))
        })?;
        Some(home.join("token"))
    })?;
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers().get(name)?.to_str().ok().map(|s| s.trim().trim_start_matches("W/").trim_matches('"').to_string())
}

/// Download `file` into `cache` (resuming a partial download) and return its snapshot path.
pub fn download(cache: &Path, file: &HubFile) -> anyhow::Result<PathBuf> {
    let url = format!("{}/{}/resolve/{}/{}", endpoint(), file.repo.id, file.repo.revision, file.path);
    let auth = token().map(|t| format!("Bearer {t}"));
    let meta_agent: ureq::Agent =
        ureq::Agent::config_builder().max_redirects(0).http_status_as_error(false).build().into();
    let mut req = meta_agent.head(&url).header("User-Agent", concat!("videovla/", env!("CARGO_PKG_VERSION")));
    if let Some(a) = &auth {
        req = req.header("Authorization", a);
    }
    let resp = req.call().with_context(|| format!("{file}: cannot reach {url} (offline? fetch it with huggingface-cli)"))?;
    let status = resp.status().as_u16();
    anyhow::ensure!(
        (200..400).contains(&status),
        "{file}: the hub answered {status} for {url}{}",
        if status == 401 || status == 403 { "; the repo may be gated: accept its terms and set HF_TOKEN" } else { "" }
    );
    let commit = header(&resp, "x-repo-commit").with_context(|| format!("{file}: the hub sent no X-Repo-Commit"))?;
    let etag = header(&resp, "x-linked-etag")
        .or_else(|| header(&resp, "etag"))
        .with_context(|| format!("{file}: the hub sent no ETag"))?;
    let size: Option<u64> = header(&resp, "x-linked-size")
        .or_else(|| header(&resp, "content-length"))
        .and_then(|s| s.parse().ok());
    for s in [&commit, &etag] {
        anyhow::ensure!(!s.is_empty() && !s.contains(['/', '\\']) && s != "..", "{file}: unexpected hub metadata {s:?}");
    }
    let repo = cache.join(file.repo.cache_folder());
    let blobs = repo.join("blobs");
    std::fs::create_dir_all(&blobs).with_context(|| format!("cannot create {}", blobs.display()))?;
    let blob = blobs.join(&etag);
    if !blob.is_file() {
        fetch_blob(&url, auth.as_deref(), &blob, size, file)?;
    }
    let link = repo.join("snapshots").join(&commit).join(&file.path);
    std::fs::create_dir_all(link.parent().expect("snapshot path has a parent"))?;
    let depth = file.path.matches('/').count() + 2;
    let target = format!("{}blobs/{etag}", "../".repeat(depth));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).with_context(|| format!("cannot create {}", link.display()))?;
    if file.repo.revision != commit {
        let refs = repo.join("refs").join(&file.repo.revision);
        std::fs::create_dir_all(refs.parent().expect("refs path has a parent"))?;
        crate::util::write_atomic(&refs, commit.as_bytes())?;
    }
    Ok(link)
}

fn fetch_blob(url: &str, auth: Option<&str>, blob: &Path, size: Option<u64>, file: &HubFile) -> anyhow::Result<()> {
    let partial = PathBuf::from(format!("{}.incomplete", blob.display()));
    let mut have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    if size.is_some_and(|s| have > s) {
        have = 0;
    }
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = agent.get(url).header("User-Agent", concat!("videovla/", env!("CARGO_PKG_VERSION")));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    if have > 0 {
        req = req.header("Range", &format!("bytes={have}-"));
    }
    let resp = req.call().with_context(|| format!("{file}: download failed"))?;
    let status = resp.status().as_u16();
    let resumed = status == 206;
    anyhow::ensure!(status == 200 || resumed, "{file}: the hub answered {status} for {url}");
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(resumed)
        .write(true)
        .truncate(!resumed)
        .open(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let start = if resumed { have } else { 0 };
    let pb = indicatif::ProgressBar::new(size.unwrap_or(0));
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    pb.set_message(file.path.rsplit('/').next().unwrap_or("").to_string());
    pb.set_position(start);
    let name = file.to_string();
    super::hub::report_download(&name, start, size);
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = start;
    loop {
        let n = body.read(&mut buf).with_context(|| format!("{file}: the download stopped at {done} bytes; run again to resume"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        done += n as u64;
        pb.set_position(done);
        super::hub::report_download(&name, done, size);
    }
    out.sync_all()?;
    pb.finish_and_clear();
    if let Some(s) = size {
        anyhow::ensure!(done == s, "{file}: got {done} of {s} bytes; run again to resume");
    }
    std::fs::rename(&partial, blob).with_context(|| format!("cannot write {}", blob.display()))?;
    Ok(())
}
