//! The openpi-compatible policy server (../shared/docs/robot-protocol.md): plain WebSocket on
//! `ws://host:port/`, msgpack metadata on connect, then lock-step observation → reply;
//! `GET /healthz` → `200 OK`; any failure → a text frame with the reason, then close 1011.
//!
//! Threads: one accept loop, one thread per client, and one policy thread that owns the model.
//! Client threads queue [`Job`]s to the policy thread over a crossbeam channel and wait for
//! their own reply, so several clients share one model, a slow or vanished client only ever
//! blocks its own thread, and whoever watches [`Server::events`] (the viewer, `serve --record`)
//! is never waited on (the event channel is unbounded).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, Sender};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::msgpack;
use super::protocol::{self, ObsKeys, Observation, Reply};
use crate::action::ActionStats;
use crate::model::hub::ModelSource;
use crate::model::pipeline::{CancelToken, Prediction, PredictParams, VideoVla};

pub const DEFAULT_PORT: u16 = 8000;
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
/// Connections served at once (each holds a thread); more get `503` and are closed.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection with no frame at all (websocket clients ping every 20 s) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Events buffered for the watcher; frame messages beyond this are dropped, never waited on.
const EVENT_BUFFER: usize = 8192;
/// Executed frames kept per chunk.
pub const MAX_FRAMES_PER_CHUNK: usize = 4096;
const ERROR_REASON: &str = "Internal server error. Traceback included in previous frame.";

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub model: ModelSource,
    /// Required `Authorization: Api-Key <key>` header, if set.
    pub api_key: Option<String>,
    /// Largest accepted message (bytes).
    pub max_message: usize,
    pub keys: ObsKeys,
    /// Send the decoded imagination in every reply (clients can opt out per request).
    pub imagination: bool,
    /// Base seed; request n of the server uses `seed + n` unless the observation sets `videovla/seed`.
    pub seed: u64,
    /// Overrides of the model's default sampler settings.
    pub params: Option<PredictParams>,
}

impl ServerConfig {
    pub fn new(model: ModelSource) -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            model,
            api_key: None,
            max_message: DEFAULT_MAX_MESSAGE,
            keys: ObsKeys::default(),
            imagination: true,
            seed: 0,
            params: None,
        }
    }
}

/// What the server reports (for the viewer's Robot panel and recordings).
#[derive(Clone)]
pub enum ServerEvent {
    Connected { client: u64, peer: SocketAddr },
    Disconnected { client: u64, reason: String },
    /// A request arrived (the observation as sent).
    Request { client: u64, chunk: u64, observation: Arc<Observation> },
    /// An intermediate execution frame (optional frame message).
    Frame { client: u64, observation: Arc<Observation> },
    Reply { client: u64, chunk: u64, prediction: Arc<Prediction>, actions: Arc<Vec<Vec<f32>>>, infer_ms: f64 },
    /// A client got an error frame (then its connection was closed).
    ClientError { client: u64, message: String },
}

/// A finished prediction for one request.
struct JobResult {
    prediction: Arc<Prediction>,
    actions: Vec<Vec<f32>>,
    seed: u64,
    infer_ms: f64,
}

struct Job {
    obs: Arc<Observation>,
    reply: Sender<Result<JobResult, String>>,
    /// Cancelled when the client goes away (a queued job is then skipped, a running one stops
    /// within a denoising step).
    cancel: CancelToken,
}

struct Shared {
    cfg: ServerConfig,
    metadata: Vec<u8>,
    jobs: Sender<Job>,
    events: Sender<ServerEvent>,
    notify: Arc<dyn Fn() + Send + Sync>,
    stop: AtomicBool,
    chunks: AtomicU64,
    clients: AtomicU64,
    active: std::sync::atomic::AtomicUsize,
    /// A handle on every open connection, so `stop` can close them.
    streams: std::sync::Mutex<std::collections::HashMap<u64, TcpStream>>,
}

impl Shared {
    fn emit(&self, e: ServerEvent) {
        let _ = self.events.send(e);
        (self.notify)();
    }

    /// Frames may come at a high rate and get no reply: drop them rather than wait.
    fn emit_frame(&self, e: ServerEvent) {
        if self.events.try_send(e).is_ok() {
            (self.notify)();
        }
    }
}

pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    events: Receiver<ServerEvent>,
    accept: Option<std::thread::JoinHandle<()>>,
    pub model_name: String,
    /// The model's input size (executed frames are compared in this view).
    pub image_size: usize,
}

impl Server {
    /// Load the model, bind and start serving. Blocks while the model loads (call it off the UI
    /// thread). `notify` is called after every event.
    pub fn start(cfg: ServerConfig, notify: impl Fn() + Send + Sync + 'static) -> anyhow::Result<Server> {
        let model = VideoVla::load_source(&cfg.model, &candle_core::Device::Cpu)?;
        let stats = model.action_stats()?;
        let model_name = model.config.name.clone();
        let image_size = model.config.image_size;
        let metadata = msgpack::encode(&protocol::metadata(
            &model_name,
            model.config.dit.action_length,
            model.config.dit.action_dim,
            model.config.image_size,
            model.num_frames(),
        ));
        let listener = TcpListener::bind((cfg.host.as_str(), cfg.port)).with_context(|| {
            format!("cannot listen on {}:{}; pick another --port (or stop what is using it)", cfg.host, cfg.port)
        })?;
        let addr = listener.local_addr()?;
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let (ev_tx, ev_rx) = crossbeam_channel::bounded(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            cfg,
            metadata,
            jobs: jobs_tx,
            events: ev_tx,
            notify: Arc::new(notify),
            stop: AtomicBool::new(false),
            chunks: AtomicU64::new(0),
            clients: AtomicU64::new(0),
            active: std::sync::atomic::AtomicUsize::new(0),
            streams: Default::default(),
        });
        let params = shared.cfg.params.clone().unwrap_or_else(|| model.default_params());
        std::thread::Builder::new()
            .name("videovla-policy".into())
            .spawn(move || policy_loop(model, stats, params, jobs_rx))?;
        let sh = shared.clone();
        let accept = std::thread::Builder::new().name("videovla-accept".into()).spawn(move || {
            for stream in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else {
                    // e.g. out of file descriptors: do not spin
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if sh.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                sh.active.fetch_add(1, Ordering::SeqCst);
                let id = sh.clients.fetch_add(1, Ordering::SeqCst);
                let sh = sh.clone();
                let spawned = std::thread::Builder::new().name(format!("videovla-client-{id}")).spawn({
                    let sh = sh.clone();
                    move || {
                        serve_connection(stream, id, &sh);
                        sh.active.fetch_sub(1, Ordering::SeqCst);
                    }
                });
                if spawned.is_err() {
                    sh.active.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })?;
        Ok(Server { addr, shared, events: ev_rx, accept: Some(accept), model_name, image_size })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn events(&self) -> &Receiver<ServerEvent> {
        &self.events
    }

    /// Stop accepting and close every connection; the policy thread ends with the last client thread.
    pub fn stop(&mut self) {
        if self.shared.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        for (_, s) in self.shared.streams.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        // Wake the accept loop (on loopback when bound to every interface).
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(if wake.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn policy_loop(mut model: VideoVla, stats: Option<ActionStats>, params: PredictParams, jobs: Receiver<Job>) {
    let mut n: u64 = 0;
    while let Ok(job) = jobs.recv() {
        if job.cancel.is_cancelled() {
            continue; // its client left while it was queued
        }
        let t0 = Instant::now();
        let mut p = params.clone();
        p.seed = job.obs.seed.unwrap_or(params.seed.wrapping_add(n));
        p.decode = job.obs.want_imagination.unwrap_or(params.decode);
        n += 1;
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| -> anyhow::Result<JobResult> {
            let pred = model.predict(&job.obs.image, &job.obs.prompt, &p, &mut |_| {}, &job.cancel)?;
            let actions = crate::action::to_commands(&pred.samples[0].actions, stats.as_ref())?;
            Ok(JobResult { prediction: Arc::new(pred), actions, seed: p.seed, infer_ms: t0.elapsed().as_secs_f64() * 1e3 })
        }));
        let r = match r {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(format!("inference failed: {e:#}")),
            Err(_) => Err("inference panicked (the server keeps serving)".to_string()),
        };
        let _ = job.reply.send(r);
    }
}

/// Read (without consuming) the HTTP request head.
fn peek_head(stream: &TcpStream) -> std::io::Result<String> {
    let mut buf = vec![0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = stream.peek(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before the request"));
        }
        let head = &buf[..n];
        if head.windows(4).any(|w| w == b"\r\n\r\n") || n == buf.len() || Instant::now() > deadline {
            return Ok(String::from_utf8_lossy(head).into_owned());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn serve_connection(mut stream: TcpStream, id: u64, sh: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(head) = peek_head(&stream) else { return };
    let first = head.lines().next().unwrap_or("");
    let upgrade = head.to_ascii_lowercase().contains("upgrade: websocket");
    if first.starts_with("GET /healthz") && !upgrade {
        use std::io::Read;
        let mut sink = vec![0u8; head.len()];
        let _ = stream.read_exact(&mut sink);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n");
        return;
    }
    let peer = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut wcfg = WebSocketConfig::default();
    wcfg.max_message_size = Some(sh.cfg.max_message);
    wcfg.max_frame_size = Some(sh.cfg.max_message);
    let key = sh.cfg.api_key.clone();
    let check = move |req: &tungstenite::handshake::server::Request, resp: tungstenite::handshake::server::Response| {
        if let Some(key) = &key {
            let got = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            if got != format!("Api-Key {key}") {
                let mut e = tungstenite::handshake::server::ErrorResponse::new(Some(
                    "missing or wrong API key: send the header `Authorization: Api-Key <key>`\n".to_string(),
                ));
                *e.status_mut() = tungstenite::http::StatusCode::UNAUTHORIZED;
                return Err(e);
            }
        }
        Ok(resp)
    };
    let mut ws = match tungstenite::accept_hdr_with_config(stream, check, Some(wcfg)) {
        Ok(ws) => ws,
        Err(_) => return,
    };
    let _ = ws.get_mut().set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = ws.get_mut().set_write_timeout(Some(Duration::from_secs(60)));
    let _ = ws.get_mut().set_nodelay(true);
    if ws.send(Message::binary(sh.metadata.clone())).is_err() {
        return;
    }
    if let Ok(s) = ws.get_ref().try_clone() {
        sh.streams.lock().unwrap_or_else(|e| e.into_inner()).insert(id, s);
    }
    sh.emit(ServerEvent::Connected { client: id, peer });
    let reason = client_loop(&mut ws, id, sh);
    sh.streams.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    sh.emit(ServerEvent::Disconnected { client: id, reason });
}

/// Serve one connection until it ends; returns why.
fn client_loop(ws: &mut WebSocket<TcpStream>, id: u64, sh: &Shared) -> String {
    let mut prev_total_ms: Option<f64> = None;
    // Messages that arrived while a request was running (a client breaking lock-step).
    let mut pending: std::collections::VecDeque<tungstenite::Bytes> = Default::default();
    loop {
        let next = match pending.pop_front() {
            Some(b) => Ok(Message::Binary(b)),
            None => ws.read(),
        };
        let msg = match next {
            Ok(m) => m,
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                let _ = ws.close(None);
                let _ = ws.flush();
                return format!("idle for {} s", IDLE_TIMEOUT.as_secs());
            }
            Err(tungstenite::Error::Capacity(e)) => {
                let m = format!(
                    "message too large ({e}); the server accepts at most {} MiB (start it with a larger --max-message-mib, or send smaller images)",
                    sh.cfg.max_message >> 20
                );
                return fail(ws, id, sh, m);
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return "closed".into(),
            Err(tungstenite::Error::Io(e)) => return format!("connection lost: {e}"),
            Err(tungstenite::Error::Protocol(e)) => return format!("connection lost: {e}"),
            Err(e) => return fail(ws, id, sh, format!("websocket error: {e}")),
        };
        let t0 = Instant::now();
        let bytes = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => {
                let _ = ws.flush(); // sends the queued close reply
                return "closed by the client".into();
            }
            Message::Text(_) => return fail(ws, id, sh, "send observations as binary msgpack frames, not text".into()),
            _ => continue, // ping/pong: tungstenite answers pings itself
        };
        let obs = match msgpack::decode(&bytes).and_then(|v| protocol::parse_observation(&v, &sh.cfg.keys)) {
            Ok(o) => Arc::new(o),
            Err(e) => return fail(ws, id, sh, format!("bad observation: {e}")),
        };
        if obs.frame.is_some() {
            sh.emit_frame(ServerEvent::Frame { client: id, observation: obs });
            continue;
        }
        let chunk = sh.chunks.fetch_add(1, Ordering::SeqCst);
        sh.emit(ServerEvent::Request { client: id, chunk, observation: obs.clone() });
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut obs_req = (*obs).clone();
        if obs_req.want_imagination.is_none() {
            obs_req.want_imagination = Some(sh.cfg.imagination);
        }
        if obs_req.seed.is_none() {
            obs_req.seed = Some(sh.cfg.seed.wrapping_add(chunk));
        }
        let cancel = CancelToken::new();
        if sh.jobs.send(Job { obs: Arc::new(obs_req), reply: tx, cancel: cancel.clone() }).is_err() {
            return fail(ws, id, sh, "the policy thread has stopped".into());
        }
        // Wait for the policy while still reading the socket: pings get their pongs (websockets
        // clients close a connection whose pong is 20 s late) and a client that leaves cancels
        // its request.
        let _ = ws.get_mut().set_read_timeout(Some(Duration::from_millis(50)));
        let r = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => break r,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return fail(ws, id, sh, "the policy thread has stopped".into()),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            }
            match ws.read() {
                Ok(Message::Binary(b)) => pending.push_back(b),
                Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    cancel.cancel();
                    let _ = ws.flush();
                    return "closed while its request was running".into();
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    let _ = ws.flush(); // sends queued pongs
                }
                Err(e) => {
                    cancel.cancel();
                    return format!("connection lost while its request was running: {e}");
                }
            }
        };
        let _ = ws.get_mut().set_read_timeout(Some(IDLE_TIMEOUT));
        let r = match r {
            Ok(r) => r,
            Err(e) => return fail(ws, id, sh, e),
        };
        let pred = &r.prediction;
        let sample = &pred.samples[0];
        let t = &pred.timings;
        let stages = vec![
            ("text", t.text_ms),
            ("encode", t.encode_ms),
            ("denoise", t.step_ms.iter().sum::<f64>()),
            ("decode", t.decode_ms),
        ];
        let imagination = (!sample.frames.is_empty()).then_some(sample.frames.as_slice());
        let v = protocol::reply_value(&Reply {
            actions: &r.actions,
            raw_actions: &sample.actions,
            imagination,
            instruction: &pred.instruction,
            seed: r.seed,
            chunk_index: chunk,
            infer_ms: r.infer_ms,
            prev_total_ms,
            stages,
        });
        sh.emit(ServerEvent::Reply {
            client: id,
            chunk,
            prediction: r.prediction.clone(),
            actions: Arc::new(r.actions.clone()),
            infer_ms: r.infer_ms,
        });
        if let Err(e) = ws.send(Message::binary(msgpack::encode(&v))) {
            return format!("client gone before its reply: {e}");
        }
        prev_total_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
    }
}

/// openpi's error convention: the reason as a text frame, then close 1011.
fn fail(ws: &mut WebSocket<TcpStream>, id: u64, sh: &Shared, message: String) -> String {
    sh.emit(ServerEvent::ClientError { client: id, message: message.clone() });
    let _ = ws.send(Message::text(message.clone()));
    let _ = ws.close(Some(CloseFrame { code: CloseCode::Error, reason: ERROR_REASON.into() }));
    // Drain until the client acknowledges the close (bounded).
    let _ = ws.get_mut().set_read_timeout(Some(Duration::from_secs(2)));
    for _ in 0..64 {
        match ws.read() {
            Ok(_) => {}
            Err(_) => break,
        }
    }
    format!("error: {message}")
}
