//! `videovla sim record`: expert demonstrations as safetensors shards + JSON.
//!
//! # Format (`videovla-sim-v1`), readable with Python's `safetensors` + `json`
//!
//! ```text
//! DIR/meta.json                 dataset and per-episode metadata
//! DIR/shard-00000.safetensors   episodes 0..k, concatenated
//! DIR/shard-00001.safetensors   ...
//! ```
//! Each shard holds (F = frames in the shard, A = actions in the shard):
//! * `frames`: uint8 `(F, H, W, 3)` RGB, top row first, one per sub-frame;
//! * `ee_pose`: float32 `(F, 7)` end-effector pose at each frame,
//!   `[x, y, z, roll, pitch, yaw, gripper]` (metres/radians, base frame;
//!   gripper = finger gap / max gap, 1 open, 0 closed);
//! * `actions`: float32 `(A, 7)` `[droll, dpitch, dyaw, dx, dy, dz, gripper]`,
//!   the convention of the `videovla::sim` module docs;
//! * `frame_episode`: int64 `(F,)` and `action_episode`: int64 `(A,)`, the
//!   global episode index of each row.
//!
//! `meta.json` has `format`, `size`, `ssaa`, `camera_*`, `substeps`,
//! `chunk`, `execute`, `action_convention`, `shards`, and
//! `episodes`: a list of `{episode, shard, frame_start, frame_count,
//! action_start, action_count, task, split, seed, instruction, success,
//! objects, target, reference, lead_actions}`, where the start fields index rows of the
//! episode's shard. Alignment: with `S = substeps`, an episode's
//! `frame_count = 1 + S * action_count`; its local frame `k*S` is the
//! observation before local action `k`, and frames `k*S+1 ..= (k+1)*S` show
//! action `k` executing. A VideoVLA training sample at action `k` is
//! therefore frames `k*S ..= (k+6)*S` (49 frames for S = 8) with actions
//! `k .. k+6` (pad past the end by repeating the last frame/action).
//!
//! ```python
//! import json; from safetensors.numpy import load_file
//! meta = json.load(open("DIR/meta.json"))
//! ep = meta["episodes"][0]
//! t = load_file("DIR/" + meta["shards"][ep["shard"]])
//! frames = t["frames"][ep["frame_start"]:ep["frame_start"] + ep["frame_count"]]
//! actions = t["actions"][ep["action_start"]:ep["action_start"] + ep["action_count"]]
//! ```
//! With a lead-in (`sim record --lead POLICY`, DAgger-style hand-over data) another policy drives
//! each episode for a few plans before the expert takes over; only the expert's part is recorded,
//! so frame 0 of such an episode is the state the policy left (`lead_actions` of its actions were
//! executed, not recorded; `meta.json` has `lead` and `lead_max_plans`).
//!
//! Files are written atomically (temporary file, then rename); `meta.json`
//! is written last, so a directory with `meta.json` is complete.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::eval::{run_episode, task_for, EpisodeConfig};
use super::expert::ExpertStyle;
use super::policy::{make_policy, PerturbedExpert, Policy};
use super::render::Renderer;
use super::tasks::Split;
use super::world::World;

pub const FORMAT: &str = "videovla-sim-v1";

#[derive(Clone, Debug)]
pub struct RecordConfig {
    pub episodes: usize,
    pub split: Split,
    pub seed: u64,
    pub out: PathBuf,
    pub size: usize,
    pub episode: EpisodeConfig,
    pub episodes_per_shard: usize,
    /// Probability per plan of pushing the expert off course (0 = the plain expert); see
    /// [`super::policy::PerturbedExpert`].
    pub perturb: f64,
    /// Which expert demonstrates.
    pub expert: ExpertStyle,
    /// Hand-over data: this policy drives each episode first (see [`Lead`]).
    pub lead: Option<Lead>,
}

/// DAgger-style hand-over: `policy` (any `sim eval --policy` spec, e.g. a model folder) drives each
/// episode for a number of plans drawn uniformly from `0..=max_plans` (seeded by the episode seed),
/// then the expert takes over and only the expert's part is recorded — demonstrations that start in
/// the states the policy's own chunks lead to, labelled by the expert.
#[derive(Clone, Debug)]
pub struct Lead {
    pub policy: String,
    pub max_plans: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct EpisodeMeta {
    pub episode: usize,
    pub shard: usize,
    pub frame_start: usize,
    pub frame_count: usize,
    pub action_start: usize,
    pub action_count: usize,
    pub task: String,
    pub split: String,
    pub seed: u64,
    pub instruction: String,
    pub success: bool,
    /// `"colour shape"` of every object, in scene order.
    pub objects: Vec<String>,
    pub target: usize,
    pub reference: Option<usize>,
    /// Actions the lead-in policy executed before the recording starts (0 without `--lead`).
    pub lead_actions: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct DatasetMeta {
    pub format: String,
    pub size: usize,
    /// Supersampling factor per axis used when rendering.
    pub ssaa: usize,
    /// Camera `eye` and `target` (m, base frame) and vertical field of view (degrees).
    pub camera_eye: [f32; 3],
    pub camera_target: [f32; 3],
    pub camera_fov_y_deg: f32,
    pub substeps: usize,
    pub chunk: usize,
    pub execute: usize,
    /// Probability per plan of a push off course (0: the plain expert's demonstrations).
    pub perturb: f64,
    /// The expert's style (`waypoints` or `funnel`, see `sim::expert`).
    pub expert: String,
    /// Episodes were cut after this many actions (0 = not cut); a cut episode has
    /// `success: false` and `action_count == max_actions`.
    pub max_actions: usize,
    pub lead: Option<String>,
    pub lead_max_plans: usize,
    pub action_convention: String,
    pub ee_pose_convention: String,
    pub shards: Vec<String>,
    pub episodes: Vec<EpisodeMeta>,
}

#[derive(Default)]
struct Shard {
    frames: Vec<u8>,
    ee_pose: Vec<f32>,
    actions: Vec<f32>,
    frame_episode: Vec<i64>,
    action_episode: Vec<i64>,
}

impl Shard {
    fn n_frames(&self) -> usize {
        self.frame_episode.len()
    }
    fn n_actions(&self) -> usize {
        self.action_episode.len()
    }
    fn write(&self, path: &Path, size: usize) -> anyhow::Result<()> {
        use safetensors::tensor::{serialize, TensorView};
        use safetensors::Dtype;
        let f32b = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let i64b = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (ee, act, fe, ae) =
            (f32b(&self.ee_pose), f32b(&self.actions), i64b(&self.frame_episode), i64b(&self.action_episode));
        let (nf, na) = (self.n_frames(), self.n_actions());
        let tensors = vec![
            ("frames", TensorView::new(Dtype::U8, vec![nf, size, size, 3], &self.frames)?),
            ("ee_pose", TensorView::new(Dtype::F32, vec![nf, 7], &ee)?),
            ("actions", TensorView::new(Dtype::F32, vec![na, 7], &act)?),
            ("frame_episode", TensorView::new(Dtype::I64, vec![nf], &fe)?),
            ("action_episode", TensorView::new(Dtype::I64, vec![na], &ae)?),
        ];
        let bytes = serialize(tensors, None)?;
        write_atomic(path, &bytes)
    }
}

/// Write `bytes` to `path` via a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("cannot rename {} to {}: {e}", tmp.display(), path.display()))
}

/// Let `policy` drive `world` for a number of plans drawn from `0..=max_plans` (seeded by the
/// episode seed; fewer if the episode ends first), executing `cfg.execute` actions of each chunk;
/// returns the number of actions executed.
fn lead_in(
    world: &mut World,
    policy: &mut dyn Policy,
    max_plans: usize,
    cfg: &EpisodeConfig,
    renderer: &mut Renderer,
) -> anyhow::Result<usize> {
    use rand::{Rng, SeedableRng};
    let plans = rand_chacha::ChaCha8Rng::seed_from_u64(world.seed ^ 0x4c45_4144).random_range(0..=max_plans);
    policy.reset(world.seed);
    let limit = world.task.kind.max_steps();
    let mut n = 0;
    for _ in 0..plans {
        if world.success() || world.steps >= limit {
            break;
        }
        let size = if policy.needs_image() { cfg.image_size } else { 0 };
        let chunk = policy.act(&world.observation_with(renderer, size))?;
        anyhow::ensure!(!chunk.is_empty(), "lead policy {} returned an empty action chunk", policy.name());
        for a in chunk.iter().take(cfg.execute) {
            world.step(a)?;
            n += 1;
            if world.success() || world.steps >= limit {
                break;
            }
        }
    }
    Ok(n)
}

/// Record `cfg.episodes` expert episodes, pushed off course with probability `cfg.perturb` per plan (tasks cycle pick, stack, place; seeds `seed..`).
pub fn record(cfg: &RecordConfig, mut progress: impl FnMut()) -> anyhow::Result<DatasetMeta> {
    let mut policy = PerturbedExpert::new(cfg.episode.chunk, cfg.perturb)?.with_style(cfg.expert);
    // Before anything is written: a bad lead policy must not cost an existing dataset its meta.json.
    let mut lead = match &cfg.lead {
        Some(l) => Some((make_policy(&l.policy, cfg.episode.chunk, cfg.seed)?, l.max_plans)),
        None => None,
    };
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| anyhow::anyhow!("cannot create output directory {}: {e}", cfg.out.display()))?;
    // An existing dataset is incomplete from here on until the new meta.json lands.
    let meta_path = cfg.out.join("meta.json");
    if meta_path.exists() {
        std::fs::remove_file(&meta_path).map_err(|e| anyhow::anyhow!("cannot replace {}: {e}", meta_path.display()))?;
    }
    let camera = super::render::Camera::default();
    let mut renderer = Renderer::new(camera, cfg.episode.ssaa);
    let mut meta = DatasetMeta {
        format: FORMAT.into(),
        size: cfg.size,
        ssaa: cfg.episode.ssaa.max(1),
        camera_eye: [camera.eye.x, camera.eye.y, camera.eye.z],
        camera_target: [camera.target.x, camera.target.y, camera.target.z],
        camera_fov_y_deg: camera.fov_y_deg,
        substeps: cfg.episode.substeps,
        chunk: cfg.episode.chunk,
        execute: cfg.episode.execute,
        perturb: cfg.perturb,
        expert: cfg.expert.name().into(),
        max_actions: cfg.episode.max_actions,
        lead: cfg.lead.as_ref().map(|l| l.policy.clone()),
        lead_max_plans: cfg.lead.as_ref().map_or(0, |l| l.max_plans),
        action_convention: "[droll, dpitch, dyaw (rad, added to sxyz Euler angles), dx, dy, dz (m, base frame), \
                            gripper (1 open, 0 closed)]"
            .into(),
        ee_pose_convention: "[x, y, z (m, base frame), roll, pitch, yaw (rad, sxyz), gripper gap / max gap]".into(),
        shards: Vec::new(),
        episodes: Vec::with_capacity(cfg.episodes),
    };
    let mut shard = Shard::default();
    let mut buf = Vec::new();
    for i in 0..cfg.episodes {
        let seed = cfg.seed + i as u64;
        let mut world = World::reset(task_for(i as u64), cfg.split, seed);
        let lead_actions = match lead.as_mut() {
            Some((p, max_plans)) => lead_in(&mut world, p.as_mut(), *max_plans, &cfg.episode, &mut renderer)?,
            None => 0,
        };
        let (frame_start, action_start) = (shard.n_frames(), shard.n_actions());
        let outcome = run_episode(&mut world, &mut policy, &cfg.episode, |w| {
            renderer.render_into(w, cfg.size, cfg.size, &mut buf);
            shard.frames.extend_from_slice(&buf);
            shard.ee_pose.extend_from_slice(&w.ee_pose().0);
            shard.frame_episode.push(i as i64);
        })?;
        for a in &outcome.actions {
            shard.actions.extend_from_slice(a);
            shard.action_episode.push(i as i64);
        }
        meta.episodes.push(EpisodeMeta {
            episode: i,
            shard: meta.shards.len(),
            frame_start,
            frame_count: shard.n_frames() - frame_start,
            action_start,
            action_count: outcome.actions.len(),
            task: outcome.task.name().into(),
            split: cfg.split.name().into(),
            seed,
            instruction: outcome.instruction,
            success: outcome.success,
            objects: world.objects.iter().map(|o| o.name()).collect(),
            target: world.task.target,
            reference: world.task.reference,
            lead_actions,
        });
        progress();
        let last = i + 1 == cfg.episodes;
        let per_shard = cfg.episodes_per_shard.max(1);
        if last || (i + 1) % per_shard == 0 {
            let name = format!("shard-{:05}.safetensors", meta.shards.len());
            shard.write(&cfg.out.join(&name), cfg.size)?;
            meta.shards.push(name);
            shard = Shard::default();
        }
    }
    // Shards left over from an older, larger dataset in the same directory.
    for entry in std::fs::read_dir(&cfg.out)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("shard-") && name.ends_with(".safetensors") && !meta.shards.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    let json = serde_json::to_vec_pretty(&meta)?;
    write_atomic(&meta_path, &json)?;
    Ok(meta)
}
