//! A policy on the other end of an openpi websocket (`videovla serve`, or any openpi server):
//! the simulator plays the robot in another process (`videovla sim connect`).
//!
//! Observations go out in openpi's LIBERO layout (`observation/image` (H, W, 3) uint8,
//! `observation/state` = the end-effector pose [x, y, z, roll, pitch, yaw, gripper] float32,
//! `prompt`, and `videovla/seed` = [`chunk_seed`] of the episode seed and the request index, so the
//! server samples with the noise the in-process model policy would use). With `stream_frames`, every rendered sub-frame between requests is also sent as a
//! frame message (`videovla/frame`, with `videovla/action_step`) so the server's execution
//! timeline runs at the simulator's full frame rate.

use std::sync::{Arc, Mutex, MutexGuard};

use super::policy::{chunk_seed, Observation, Policy};
use super::world::{Action, World};
use crate::robot::client::{libero_observation, reply_actions, PolicyClient};

pub struct RemotePolicy {
    client: Arc<Mutex<PolicyClient>>,
    pub url: String,
    /// Sub-frames sent since the last request (`None` before the first request).
    frames: Arc<Mutex<Option<usize>>>,
    pub requests: usize,
    pub infer_ms: Vec<f64>,
    /// Episode seed and requests in this episode (for `videovla/seed`).
    episode_seed: u64,
    calls: u64,
}

impl RemotePolicy {
    pub fn connect(url: &str, api_key: Option<&str>) -> anyhow::Result<RemotePolicy> {
        let client = PolicyClient::connect(url, api_key)?;
        Ok(RemotePolicy { client: Arc::new(Mutex::new(client)), url: url.to_string(), frames: Arc::new(Mutex::new(None)), requests: 0, infer_ms: Vec::new(), episode_seed: 0, calls: 0 })
    }

    /// Close the connection cleanly (websocket close frame).
    pub fn close(&self) {
        lock(&self.client).shutdown();
    }

    pub fn metadata(&self) -> rmpv::Value {
        lock(&self.client).metadata.clone()
    }

    /// A frame callback for `eval::run_episode` that streams rendered sub-frames (after the
    /// first request) to the server.
    pub fn frame_streamer(&self, image_size: usize, substeps: usize, ssaa: usize) -> impl FnMut(&World) {
        let client = self.client.clone();
        let frames = self.frames.clone();
        let mut renderer = super::render::Renderer::new(super::render::Camera::default(), ssaa);
        let mut buf = Vec::new();
        let mut failed = false;
        move |w: &World| {
            let n = match *lock(&frames) {
                Some(n) if !failed => n + 1,
                _ => return,
            };
            *lock(&frames) = Some(n);
            renderer.render_into(w, image_size, image_size, &mut buf);
            let img = image::RgbImage::from_raw(image_size as u32, image_size as u32, buf.clone()).expect("rendered size");
            let pose = w.ee_pose().0;
            let mut obs = libero_observation(&img, Some(&pose), w.instruction());
            if let rmpv::Value::Map(kv) = &mut obs {
                let step = n as f64 / substeps as f64;
                kv.push((rmpv::Value::from("videovla/action_step"), rmpv::Value::F64(step)));
            }
            if let Err(e) = lock(&client).send_frame(obs) {
                tracing::warn!("streaming frames stopped: {e:#}");
                failed = true;
            }
        }
    }
}

impl Policy for RemotePolicy {
    fn name(&self) -> String {
        format!("remote:{}", self.url)
    }

    fn reset(&mut self, seed: u64) {
        *lock(&self.frames) = None;
        self.episode_seed = seed;
        self.calls = 0;
    }

    fn act(&mut self, obs: &Observation) -> anyhow::Result<Vec<Action>> {
        let img = image::RgbImage::from_raw(obs.width as u32, obs.height as u32, obs.image.clone())
            .ok_or_else(|| anyhow::anyhow!("observation image has the wrong size"))?;
        let mut msg = libero_observation(&img, Some(&obs.ee_pose), &obs.instruction);
        if let rmpv::Value::Map(kv) = &mut msg {
            let seed = chunk_seed(self.episode_seed, self.calls);
            kv.push((rmpv::Value::from("videovla/seed"), rmpv::Value::from(seed)));
        }
        self.calls += 1;
        let t0 = std::time::Instant::now();
        let reply = lock(&self.client).infer(&msg)?;
        self.infer_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        self.requests += 1;
        *lock(&self.frames) = Some(0);
        reply_actions(&reply)?.iter().map(|a| super::model_policy::sim_action(a)).collect()
    }
}

/// The client and frame counter are shared with the frame streamer; a panic elsewhere does not
/// invalidate them, so a poisoned lock is taken as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
