//! `videovla serve`: the openpi-compatible policy server, headless.

use std::path::PathBuf;

use clap::Args;

use crate::model::hub::ModelSource;
use crate::robot::protocol::ObsKeys;
use crate::robot::recording::Recording;
use crate::robot::server::{Server, ServerConfig, ServerEvent, DEFAULT_PORT};

#[derive(Args, Debug, Clone)]
pub struct ObsKeyArgs {
    /// Observation key of the camera image (repeatable; first present wins; `a/b` also matches
    /// nested maps). Default: observation/image, observation/exterior_image_1_left, image,
    /// images/cam_high, observation/images/image.
    #[arg(long = "image-key")]
    pub image_key: Vec<String>,
    /// Observation key of the instruction (repeatable). Default: prompt, instruction, task,
    /// language_instruction.
    #[arg(long = "prompt-key")]
    pub prompt_key: Vec<String>,
    /// Observation key of the end-effector state [x, y, z, ...] (repeatable). Default:
    /// observation/state, state, observation/ee_pose.
    #[arg(long = "state-key")]
    pub state_key: Vec<String>,
}

impl ObsKeyArgs {
    pub fn keys(&self) -> ObsKeys {
        let mut k = ObsKeys::default();
        if !self.image_key.is_empty() {
            k.image = self.image_key.clone();
        }
        if !self.prompt_key.is_empty() {
            k.prompt = self.prompt_key.clone();
        }
        if !self.state_key.is_empty() {
            k.state = self.state_key.clone();
        }
        k
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Port (openpi's default is 8000; 0 picks a free one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Address to bind. Loopback by default; 0.0.0.0 serves the network (set --api-key then).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Model folder or hf:ORG/NAME (default: the embedded models/tiny-sim).
    #[arg(long)]
    pub model: Option<String>,
    /// Require `Authorization: Api-Key <KEY>` from clients.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Largest accepted message in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_message_mib: usize,
    /// Do not send the imagination in replies (actions only; clients may also ask per request).
    #[arg(long)]
    pub no_imagination: bool,
    /// Base seed (request n uses seed + n unless the client sends `videovla/seed`).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write every finished chunk (imagined.gif, executed.gif, chunk.json with the motion
    /// similarity) under this folder.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Actions a client executes per chunk when it does not say (for aligning the imagination
    /// with the execution).
    #[arg(long, default_value_t = 6)]
    pub assume_executed: usize,
    #[command(flatten)]
    pub keys: ObsKeyArgs,
}

pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=4096).contains(&a.max_message_mib), "--max-message-mib must be between 1 and 4096");
    let source = match &a.model {
        Some(m) => ModelSource::parse(m)?,
        None => ModelSource::Dir(super::predict::default_model_dir()),
    };
    let mut cfg = ServerConfig::new(source);
    cfg.host = a.host.clone();
    cfg.port = a.port;
    cfg.api_key = a.api_key.clone().filter(|k| !k.is_empty());
    cfg.max_message = a.max_message_mib << 20;
    cfg.imagination = !a.no_imagination;
    cfg.seed = a.seed;
    cfg.keys = a.keys.keys();
    eprintln!("loading {} ...", cfg.model);
    let server = Server::start(cfg.clone(), || {})?;
    let addr = server.addr();
    outln!("serving {} on ws://{addr} (health: http://{addr}/healthz){}", server.model_name, if cfg.api_key.is_some() { ", API key required" } else { "" });
    if a.host != "127.0.0.1" && a.host != "localhost" && cfg.api_key.is_none() {
        eprintln!("warning: listening on {} without --api-key: anyone who can reach this port can use the policy", a.host);
    }
    let mut rec = Recording::new(server.image_size, a.assume_executed);
    if let Some(d) = &a.record {
        std::fs::create_dir_all(d)?;
    }
    for e in server.events().iter() {
        match &e {
            ServerEvent::Connected { client, peer } => outln!("client {client} connected from {peer}"),
            ServerEvent::Disconnected { client, reason } => outln!("client {client} gone ({reason})"),
            ServerEvent::Request { client, chunk, observation } => {
                let (w, h) = observation.image.dimensions();
                outln!("client {client} request {chunk}: {w}x{h} from {:?}, {:?}", observation.image_key, observation.prompt)
            }
            ServerEvent::Reply { client, chunk, infer_ms, .. } => outln!("client {client} reply {chunk}: {infer_ms:.0} ms"),
            ServerEvent::ClientError { client, message } => outln!("client {client} error: {message}"),
            ServerEvent::Frame { .. } => {}
        }
        if let Some(i) = rec.on_event(&e) {
            let c = &rec.chunks[i];
            if let Some(s) = c.similarity.as_ref().and_then(|s| s.score) {
                outln!("chunk {}: motion similarity {s:.3} ({} executed frames)", c.chunk, c.executed.len());
            }
            if let Some(d) = &a.record {
                if let Err(err) = rec.save_chunk(i, d) {
                    eprintln!("could not record chunk {}: {err:#}", c.chunk);
                }
            }
            // Keep memory bounded on long runs: only the open chunks and the last 64 closed.
            let closed = rec.chunks.iter().filter(|c| c.closed).count();
            if closed > 64 {
                let mut drop = closed - 64;
                rec.chunks.retain(|c| {
                    if c.closed && drop > 0 {
                        drop -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }
    Ok(())
}
