//! Policies: anything that turns an observation into a chunk of actions.
//!
//! A model policy (VideoVLA from a MODEL_DIR) plugs in by implementing
//! [`Policy`] and adding one arm to [`make_policy`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::expert::expert_action;
use super::world::{Action, World};
use super::*;

/// What a policy sees before planning a chunk.
#[derive(Clone, Debug)]
pub struct Observation {
    /// Camera image, `width*height*3` RGB bytes, row-major, top row first.
    pub image: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub instruction: String,
    /// End-effector pose `[x, y, z, roll, pitch, yaw, gripper]` (see the module header).
    pub ee_pose: [f32; 7],
    /// Privileged simulator state; only scripted policies may use it.
    pub world: Option<World>,
}

/// The sampling seed of a model policy's `call`-th prediction in the episode with seed
/// `episode_seed`: the in-process model policy and `sim connect` (which sends it to the server
/// as `videovla/seed`) use the same, so an episode over the network reproduces the local one.
pub fn chunk_seed(episode_seed: u64, call: u64) -> u64 {
    episode_seed.wrapping_mul(1_000_003).wrapping_add(call)
}

/// A closed-loop policy: returns a chunk of actions (the caller executes a prefix).
pub trait Policy {
    /// Short name for reports.
    fn name(&self) -> String;
    /// Whether `act` looks at `Observation::image` (scripted policies skip rendering).
    fn needs_image(&self) -> bool {
        true
    }
    /// Called at the start of each episode.
    fn reset(&mut self, _seed: u64) {}
    /// Plan `chunk` actions from `obs`.
    fn act(&mut self, obs: &Observation) -> anyhow::Result<Vec<Action>>;
}

/// The scripted expert (privileged): simulates its own controller forward.
pub struct ExpertPolicy {
    pub chunk: usize,
}

impl Policy for ExpertPolicy {
    fn name(&self) -> String {
        "expert".into()
    }
    fn needs_image(&self) -> bool {
        false
    }
    fn act(&mut self, obs: &Observation) -> anyhow::Result<Vec<Action>> {
        let Some(world) = &obs.world else {
            anyhow::bail!("the expert policy needs the simulator state (Observation::world)");
        };
        let mut w = world.clone();
        let mut out = Vec::with_capacity(self.chunk);
        for _ in 0..self.chunk.max(1) {
            let a = expert_action(&w);
            w.step(&a)?;
            out.push(a);
        }
        Ok(out)
    }
}

/// Uniformly random actions within the per-step limits; the gripper is open or closed at random.
pub struct RandomPolicy {
    pub chunk: usize,
    rng: ChaCha8Rng,
}

impl RandomPolicy {
    pub fn new(chunk: usize, seed: u64) -> RandomPolicy {
        RandomPolicy { chunk, rng: ChaCha8Rng::seed_from_u64(seed) }
    }
}

impl Policy for RandomPolicy {
    fn name(&self) -> String {
        "random".into()
    }
    fn needs_image(&self) -> bool {
        false
    }
    fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5241_4e44);
    }
    fn act(&mut self, _obs: &Observation) -> anyhow::Result<Vec<Action>> {
        let rng = &mut self.rng;
        Ok((0..self.chunk.max(1))
            .map(|_| {
                let mut a = [0.0f32; ACTION_DIM];
                for v in &mut a[0..3] {
                    *v = rng.random_range(-MAX_ROT_STEP..=MAX_ROT_STEP);
                }
                for v in &mut a[3..6] {
                    *v = rng.random_range(-MAX_TRANS_STEP..=MAX_TRANS_STEP);
                }
                a[6] = if rng.random_bool(0.5) { 1.0 } else { 0.0 };
                a
            })
            .collect())
    }
}

/// Build a policy from its command-line spec: `expert`, `random` or a model directory.
pub fn make_policy(spec: &str, chunk: usize, seed: u64) -> anyhow::Result<Box<dyn Policy>> {
    match spec {
        "expert" => Ok(Box::new(ExpertPolicy { chunk })),
        "random" => Ok(Box::new(RandomPolicy::new(chunk, seed))),
        path => {
            let p = std::path::Path::new(path);
            if !p.exists() {
                anyhow::bail!("policy {path:?} is neither `expert`, `random` nor an existing model directory");
            }
            Ok(Box::new(super::model_policy::ModelPolicy::load(p, chunk, seed)?))
        }
    }
}
