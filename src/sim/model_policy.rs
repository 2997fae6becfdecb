//! A VideoVLA model folder as a closed-loop policy: the camera image and the instruction go
//! through the shared prediction pipeline (`crate::model::pipeline`), the raw actions are
//! unnormalised with the folder's `dataset_statistics.json` and the gripper is binarised at 0.5
//! (as CogACT does), then handed to the simulator.

use std::path::Path;

use candle_core::Device;

use super::policy::{Observation, Policy};
use super::world::Action;
use crate::action::ActionStats;
use crate::model::pipeline::{CancelToken, PredictParams, VideoVla};

pub struct ModelPolicy {
    model: VideoVla,
    params: PredictParams,
    stats: Option<ActionStats>,
    chunk: usize,
    base_seed: u64,
    calls: u64,
}

impl ModelPolicy {
    pub fn load(dir: &Path, chunk: usize, seed: u64) -> anyhow::Result<Self> {
        let model = VideoVla::load(dir, &Device::Cpu)?;
        let stats = model.action_stats()?;
        let mut params = model.default_params();
        // Closed-loop control needs only the actions; the imagination is not decoded here.
        params.decode = false;
        anyhow::ensure!(
            chunk <= model.config.dit.action_length,
            "the model predicts {} actions per chunk; --chunk {chunk} is more",
            model.config.dit.action_length
        );
        Ok(Self { model, params, stats, chunk, base_seed: seed, calls: 0 })
    }

    pub fn params_mut(&mut self) -> &mut PredictParams {
        &mut self.params
    }
}

impl ModelPolicy {
    /// One prediction with the imagination decoded: (49 frames, the unnormalised chunk).
    pub fn imagine(&mut self, obs: &Observation) -> anyhow::Result<(Vec<image::RgbImage>, Vec<Action>)> {
        let decode = self.params.decode;
        self.params.decode = true;
        let chunk = self.predict_chunk(obs, self.model.config.dit.action_length);
        self.params.decode = decode;
        let (pred, chunk) = chunk?;
        Ok((pred.samples.into_iter().next().map(|s| s.frames).unwrap_or_default(), chunk))
    }

    fn predict_chunk(&mut self, obs: &Observation, n: usize) -> anyhow::Result<(crate::model::pipeline::Prediction, Vec<Action>)> {
        let img = image::RgbImage::from_raw(obs.width as u32, obs.height as u32, obs.image.clone())
            .ok_or_else(|| anyhow::anyhow!("observation image has the wrong size"))?;
        self.params.seed = super::policy::chunk_seed(self.base_seed, self.calls);
        self.calls += 1;
        let pred = self.model.predict(&img, &obs.instruction, &self.params, &mut |_| {}, &CancelToken::new())?;
        let cmds = crate::action::to_commands(&pred.samples[0].actions[..n.min(pred.samples[0].actions.len())], self.stats.as_ref())?;
        let out = cmds.iter().map(|a| sim_action(a)).collect::<anyhow::Result<Vec<_>>>()?;
        Ok((pred, out))
    }
}

/// A 7-D command as the simulator's action.
pub fn sim_action(a: &[f32]) -> anyhow::Result<Action> {
    anyhow::ensure!(a.len() == 7, "the policy outputs {}-D actions; the simulator needs 7", a.len());
    let mut act = [0f32; 7];
    act.copy_from_slice(a);
    Ok(act)
}

impl Policy for ModelPolicy {
    fn name(&self) -> String {
        format!("model:{}", self.model.config.name)
    }

    fn reset(&mut self, seed: u64) {
        self.base_seed = seed;
        self.calls = 0;
    }

    fn act(&mut self, obs: &Observation) -> anyhow::Result<Vec<Action>> {
        let chunk = self.chunk;
        Ok(self.predict_chunk(obs, chunk)?.1)
    }
}
