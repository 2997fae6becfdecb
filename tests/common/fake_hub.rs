//! A minimal Hugging Face hub endpoint on 127.0.0.1 for download tests: answers
//! `HEAD`/`GET /ORG/NAME/resolve/main/PATH` for the files registered as `ORG/NAME/PATH` with the
//! hub's headers (`X-Repo-Commit`, `ETag`), honours `Range`, and can cut the first full GET of
//! one file after `cut` bytes. Files can be added while it runs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};

pub const HUB_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

pub type HubFiles = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// Serve `files` (`ORG/NAME/PATH` -> content). Returns the endpoint URL and the request log.
pub fn fake_hub(files: HubFiles, cut: Option<(String, usize)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        let mut cut = cut;
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut range = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = Some(v.trim().trim_end_matches('-').parse::<usize>().unwrap());
                }
            }
            seen.lock().unwrap().push(format!("{} range={range:?}", line.trim()));
            let target = line.split_whitespace().nth(1).unwrap_or("");
            let path = target
                .trim_start_matches('/')
                .split_once("/resolve/main/")
                .map(|(repo, p)| format!("{repo}/{p}"))
                .unwrap_or_default();
            let Some(content) = files.lock().unwrap().get(&path).cloned() else {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            };
            let head = line.starts_with("HEAD");
            let etag = format!("{:08x}", path.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)));
            let meta = format!("X-Repo-Commit: {HUB_COMMIT}\r\nETag: \"{etag}\"\r\nConnection: close\r\n");
            let start = range.unwrap_or(0);
            let body = &content[start..];
            let status = if range.is_some() { "206 Partial Content" } else { "200 OK" };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{meta}\r\n", body.len());
            if head {
                continue;
            }
            if let Some((p, n)) = cut.as_ref().filter(|(p, _)| *p == path && range.is_none()) {
                let _ = p;
                let _ = stream.write_all(&body[..*n]);
                let _ = stream.flush();
                cut = None;
                drop(stream); // the connection drops mid-file
                continue;
            }
            let _ = stream.write_all(body);
        }
    });
    (addr, log)
}
