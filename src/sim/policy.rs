//! Policies: anything that turns an observation into a chunk of actions.
//!
//! A model policy (VideoVLA from a MODEL_DIR) plugs in by implementing
//! [`Policy`] and adding one arm to [`make_policy`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::expert::{expert_action_in, ExpertStyle};
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
/// `Send` so that `sim eval --jobs` can run each policy in its own thread pool.
pub trait Policy: Send {
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
    pub style: ExpertStyle,
}

impl ExpertPolicy {
    /// The way-point expert.
    pub fn new(chunk: usize) -> ExpertPolicy {
        ExpertPolicy { chunk, style: ExpertStyle::Waypoints }
    }
}

/// `expert`, or `expert-funnel` for the other style.
fn expert_name(style: ExpertStyle) -> String {
    match style {
        ExpertStyle::Waypoints => "expert".into(),
        s => format!("expert-{}", s.name()),
    }
}

impl Policy for ExpertPolicy {
    fn name(&self) -> String {
        expert_name(self.style)
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
            let a = expert_action_in(self.style, &w);
            w.step(&a)?;
            out.push(a);
        }
        Ok(out)
    }
}

/// The expert with perturbations, for recording recovery data (DART-style): when it plans, with
/// probability `prob` the first 1–3 actions of the chunk get an extra push of one expert step
/// (`EXPERT_SPEED`) in a random horizontal direction, and the rest of the chunk is the expert's
/// correction from where the push left it. The gripper command is never perturbed. The recorded
/// (executed) actions include the pushes, so the video and the actions stay consistent.
pub struct PerturbedExpert {
    pub chunk: usize,
    pub prob: f64,
    pub style: ExpertStyle,
    rng: ChaCha8Rng,
}

impl PerturbedExpert {
    /// The way-point expert; [`PerturbedExpert::with_style`] for the other.
    pub fn new(chunk: usize, prob: f64) -> anyhow::Result<PerturbedExpert> {
        anyhow::ensure!((0.0..=1.0).contains(&prob), "--perturb must be a probability between 0 and 1, got {prob}");
        Ok(PerturbedExpert { chunk, prob, style: ExpertStyle::Waypoints, rng: ChaCha8Rng::seed_from_u64(0) })
    }

    pub fn with_style(self, style: ExpertStyle) -> PerturbedExpert {
        PerturbedExpert { style, ..self }
    }
}

impl Policy for PerturbedExpert {
    fn name(&self) -> String {
        format!("{} (perturbed, p = {})", expert_name(self.style), self.prob)
    }
    fn needs_image(&self) -> bool {
        false
    }
    fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4441_5254);
    }
    fn act(&mut self, obs: &Observation) -> anyhow::Result<Vec<Action>> {
        let Some(world) = &obs.world else {
            anyhow::bail!("the expert policy needs the simulator state (Observation::world)");
        };
        let pushed = if self.rng.random_bool(self.prob) { self.rng.random_range(1..=3usize) } else { 0 };
        let angle = self.rng.random_range(0.0..std::f32::consts::TAU);
        let push = super::expert::EXPERT_SPEED;
        let mut w = world.clone();
        let mut out = Vec::with_capacity(self.chunk);
        for k in 0..self.chunk.max(1) {
            let mut a = expert_action_in(self.style, &w);
            if k < pushed {
                a[3] = (a[3] + push * angle.cos()).clamp(-MAX_TRANS_STEP, MAX_TRANS_STEP);
                a[4] = (a[4] + push * angle.sin()).clamp(-MAX_TRANS_STEP, MAX_TRANS_STEP);
            }
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

/// Build a policy from its command-line spec: `expert`, `expert:P` (pushed off course with
/// probability P, as `sim record --perturb P` records), `expert-funnel` / `expert-funnel:P` (the
/// funnel-style expert), `random`, an openpi server `ws://host:port`, or a model directory.
pub fn make_policy(spec: &str, chunk: usize, seed: u64) -> anyhow::Result<Box<dyn Policy>> {
    let is_dir = std::path::Path::new(spec).is_dir();
    if let Some(rest) = spec.strip_prefix("expert").filter(|_| !is_dir) {
        let (style, prob) = match rest.split_once(':') {
            Some((s, p)) => (s, Some(p)),
            None => (rest, None),
        };
        let style = match style.strip_prefix('-') {
            Some(s) => Some(ExpertStyle::parse(s)?),
            None if style.is_empty() => Some(ExpertStyle::Waypoints),
            None => None, // e.g. "expertise": not an expert spec
        };
        if let Some(style) = style {
            return match prob {
                None => Ok(Box::new(ExpertPolicy { chunk, style })),
                Some(p) => {
                    let p: f64 = p.parse().map_err(|_| {
                        anyhow::anyhow!("policy {spec:?}: write expert:P with P a probability, e.g. expert:0.3")
                    })?;
                    Ok(Box::new(PerturbedExpert::new(chunk, p)?.with_style(style)))
                }
            };
        }
    }
    match spec {
        "random" => Ok(Box::new(RandomPolicy::new(chunk, seed))),
        s if s.starts_with("ws://") || s.starts_with("wss://") => {
            // Any openpi policy server (`videovla serve`, openpi's serve_policy.py, …); the API key
            // (`sim connect --api-key`) comes from the environment here.
            let key = std::env::var("VIDEOVLA_API_KEY").ok();
            Ok(Box::new(super::remote_policy::RemotePolicy::connect(s, key.as_deref())?))
        }
        path => {
            let p = std::path::Path::new(path);
            if !p.exists() {
                anyhow::bail!("policy {path:?} is neither `expert`, `random`, a ws:// policy server nor an existing model directory");
            }
            Ok(Box::new(super::model_policy::ModelPolicy::load(p, chunk, seed)?))
        }
    }
}
