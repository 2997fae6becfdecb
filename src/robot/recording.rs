//! The execution timeline: every request a robot sends opens a chunk (its observation and, once
//! the reply is out, the imagination and actions); every later observation of the same client —
//! frame messages at full rate, and finally the next request — is a frame of what the robot
//! actually did with that chunk. When the next request arrives the chunk closes and the executed
//! frames are scored against the imagined ones (motion similarity, PSNR/SSIM).
//!
//! Synchronisation on the action step: a frame message may carry `videovla/action_step`
//! (actions executed since the reply); the executed span is then known and the imagination is cut
//! to the same span (frame `8 · steps` of the 49). Without it (an unmodified openpi client) the
//! executed frames are assumed to cover `assume_executed` actions.

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use serde::Serialize;

use super::server::ServerEvent;
use crate::compare::{motion_similarity, ClipScores, MotionOptions, MotionScore};
use crate::model::pipeline::Prediction;

/// One executed frame (in the model's view: resized and cropped like the observation).
#[derive(Clone)]
pub struct ExecFrame {
    pub image: RgbImage,
    /// End-effector position when the client sends state.
    pub position: Option<[f64; 3]>,
    /// Actions executed since the chunk's reply, when known.
    pub action_step: Option<f64>,
}

#[derive(Clone)]
pub struct ChunkRecord {
    pub client: u64,
    pub chunk: u64,
    pub instruction: String,
    /// The state sent with the request (start of the executed path), if any.
    pub start_state: Option<Vec<f64>>,
    pub prediction: Option<Arc<Prediction>>,
    pub actions: Vec<Vec<f32>>,
    pub infer_ms: f64,
    /// Frame 0 is the request's own observation.
    pub executed: Vec<ExecFrame>,
    pub closed: bool,
    pub similarity: Option<MotionScore>,
    pub quality: Option<ClipScores>,
}

impl ChunkRecord {
    /// Actions the executed frames span.
    pub fn executed_actions(&self, assume: usize) -> f64 {
        self.executed.iter().filter_map(|f| f.action_step).fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s)))).unwrap_or(assume as f64)
    }

    /// The imagined frames covering the executed span (49 frames = 6 actions × 8 + 1).
    pub fn imagined_span(&self, assume: usize) -> Vec<RgbImage> {
        let Some(p) = &self.prediction else { return Vec::new() };
        let frames = &p.samples[0].frames;
        if frames.is_empty() {
            return Vec::new();
        }
        let per_action = (frames.len() - 1) as f64 / self.actions.len().max(1) as f64;
        let end = ((self.executed_actions(assume) * per_action).round() as usize).clamp(1, frames.len() - 1);
        frames[..=end].to_vec()
    }

    pub fn executed_images(&self) -> Vec<RgbImage> {
        self.executed.iter().map(|f| f.image.clone()).collect()
    }
}

pub struct Recording {
    pub chunks: Vec<ChunkRecord>,
    /// Model input size (executed frames are brought to the model's view).
    pub image_size: usize,
    pub assume_executed: usize,
    pub motion: MotionOptions,
}

fn position(state: &Option<Vec<f64>>) -> Option<[f64; 3]> {
    state.as_ref().filter(|s| s.len() >= 3).map(|s| [s[0], s[1], s[2]])
}

impl Recording {
    pub fn new(image_size: usize, assume_executed: usize) -> Self {
        Recording { chunks: Vec::new(), image_size, assume_executed, motion: MotionOptions::default() }
    }

    fn open_chunk(&mut self, client: u64) -> Option<&mut ChunkRecord> {
        self.chunks.iter_mut().rev().find(|c| c.client == client && !c.closed)
    }

    /// Feed one server event. Returns the index of a chunk that just closed (and was scored).
    pub fn on_event(&mut self, e: &ServerEvent) -> Option<usize> {
        let size = self.image_size;
        match e {
            ServerEvent::Request { client, chunk, observation } => {
                let frame = ExecFrame {
                    image: crate::model::preprocess::model_view(&observation.image, size),
                    position: position(&observation.state),
                    action_step: None,
                };
                let closed = self.chunks.iter().rposition(|c| c.client == *client && !c.closed).map(|i| {
                    let c = &mut self.chunks[i];
                    // The new request's observation is where the previous chunk's execution
                    // ended — unless the client streamed frames (it then already sent that frame,
                    // and a new episode's first image must not end the old chunk).
                    if !c.executed.iter().any(|e| e.action_step.is_some()) {
                        c.executed.push(frame.clone());
                    }
                    c.closed = true;
                    i
                });
                self.chunks.push(ChunkRecord {
                    client: *client,
                    chunk: *chunk,
                    instruction: observation.prompt.clone(),
                    start_state: observation.state.clone(),
                    prediction: None,
                    actions: Vec::new(),
                    infer_ms: 0.0,
                    executed: vec![frame],
                    closed: false,
                    similarity: None,
                    quality: None,
                });
                if let Some(i) = closed {
                    self.score(i);
                }
                closed
            }
            ServerEvent::Reply { client, chunk, prediction, actions, infer_ms } => {
                if let Some(c) = self.chunks.iter_mut().rev().find(|c| c.client == *client && c.chunk == *chunk) {
                    c.prediction = Some(prediction.clone());
                    c.actions = actions.as_ref().clone();
                    c.infer_ms = *infer_ms;
                }
                None
            }
            ServerEvent::Frame { client, observation } => {
                if let Some(c) = self.open_chunk(*client).filter(|c| c.executed.len() < super::server::MAX_FRAMES_PER_CHUNK) {
                    c.executed.push(ExecFrame {
                        image: crate::model::preprocess::model_view(&observation.image, size),
                        position: position(&observation.state),
                        action_step: observation.frame.flatten(),
                    });
                }
                None
            }
            ServerEvent::Disconnected { client, .. } => {
                let i = self.chunks.iter().rposition(|c| c.client == *client && !c.closed)?;
                self.chunks[i].closed = true;
                self.score(i);
                Some(i)
            }
            _ => None,
        }
    }

    /// Score chunk `i` (motion similarity and PSNR/SSIM of the time-aligned clips).
    pub fn score(&mut self, i: usize) {
        let c = &self.chunks[i];
        let imagined = c.imagined_span(self.assume_executed);
        let executed = c.executed_images();
        if imagined.len() < 2 || executed.len() < 2 {
            return;
        }
        let sim = motion_similarity(&imagined, &executed, &self.motion).ok();
        // PSNR/SSIM on the executed frames against the imagined frames at the same normalised time.
        let n = executed.len();
        let aligned: Vec<RgbImage> =
            (0..n).map(|t| imagined[((t as f64) * (imagined.len() - 1) as f64 / (n - 1).max(1) as f64).round() as usize].clone()).collect();
        let q = ClipScores::compute(&aligned, &executed);
        let c = &mut self.chunks[i];
        c.similarity = sim;
        c.quality = Some(q);
    }

    /// Mean motion similarity over scored chunks.
    pub fn mean_similarity(&self) -> Option<f64> {
        let s: Vec<f64> = self.chunks.iter().filter_map(|c| c.similarity.as_ref().and_then(|s| s.score)).collect();
        (!s.is_empty()).then(|| s.iter().sum::<f64>() / s.len() as f64)
    }

    /// Write chunk `i`: `imagined.gif`, `executed.gif`, `chunk.json` (actions, scores, path).
    pub fn save_chunk(&self, i: usize, dir: &Path) -> anyhow::Result<()> {
        #[derive(Serialize)]
        struct ChunkJson<'a> {
            client: u64,
            chunk: u64,
            instruction: &'a str,
            actions: &'a [Vec<f32>],
            infer_ms: f64,
            executed_frames: usize,
            executed_actions: f64,
            executed_positions: Vec<Option<[f64; 3]>>,
            motion_similarity: Option<&'a MotionScore>,
            quality: Option<&'a ClipScores>,
        }
        let c = &self.chunks[i];
        let d = dir.join(format!("chunk-{:05}", c.chunk));
        let tmp = dir.join(format!(".chunk-{:05}.tmp", c.chunk));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let imagined = c.imagined_span(self.assume_executed);
        if !imagined.is_empty() {
            crate::export::write_gif(&tmp.join("imagined.gif"), &imagined, crate::export::FPS)?;
        }
        crate::export::write_gif(&tmp.join("executed.gif"), &c.executed_images(), crate::export::FPS)?;
        let j = ChunkJson {
            client: c.client,
            chunk: c.chunk,
            instruction: &c.instruction,
            actions: &c.actions,
            infer_ms: c.infer_ms,
            executed_frames: c.executed.len(),
            executed_actions: c.executed_actions(self.assume_executed),
            executed_positions: c.executed.iter().map(|f| f.position).collect(),
            motion_similarity: c.similarity.as_ref(),
            quality: c.quality.as_ref(),
        };
        std::fs::write(tmp.join("chunk.json"), serde_json::to_vec_pretty(&j)?)?;
        let _ = std::fs::remove_dir_all(&d);
        std::fs::rename(&tmp, &d)?;
        Ok(())
    }
}
