//! The built-in tabletop robot simulator: a table, 3–5 objects, a floating
//! two-finger gripper driven by VideoVLA's 7-D action, a software camera,
//! language tasks, a scripted expert, a dataset recorder and closed-loop
//! evaluation.
//!
//! This header is **the one place** where the action convention, units,
//! limits and frames are documented; the CLI help points here.
//!
//! # Frames and units
//! * Lengths in metres, angles in radians, time in actions (one action = one
//!   control step, [`ACTION_SECONDS`] of simulated time).
//! * **Base frame = table frame**: origin at the centre of the table top,
//!   `+x` away from the robot (towards the camera), `+y` to the left as seen
//!   from the robot, `+z` up. The table top is the plane `z = 0` and covers
//!   `|x|, |y| <= TABLE_HALF` (0.24 m).
//! * The **end-effector point (TCP)** is the point midway between the two
//!   fingertips (the bottom of the fingers). Its orientation is the Euler
//!   triple (roll, pitch, yaw), `R = Rz(yaw)·Ry(pitch)·Rx(roll)` (`'sxyz'`,
//!   as in transforms3d / SimplerEnv). At roll = pitch = 0 the fingers point
//!   straight down and close along the gripper's local `y` axis, which is the
//!   base `y` axis rotated by `yaw`.
//!
//! # The 7-D action (VideoVLA paper §4.1)
//! `a = [droll, dpitch, dyaw, dx, dy, dz, gripper]`
//! * `a[0..3]`: rotation delta in radians. It is **added** to the Euler
//!   angles (for the small per-step angles allowed here this equals composing
//!   `ΔR·R` to first order). Each component is clipped to
//!   `±MAX_ROT_STEP` (0.25 rad). Roll and pitch are then clipped to
//!   `±MAX_TILT` (0.30 rad); yaw is wrapped to `(-π, π]`.
//! * `a[3..6]`: translation delta of the TCP in metres, **base frame**.
//!   Each component is clipped to `±MAX_TRANS_STEP` (0.04 m); the result is
//!   clipped to the workspace `|x|, |y| <= WORKSPACE_HALF` (0.20 m),
//!   `Z_MIN <= z <= Z_MAX` (0.005–0.30 m). Motion that would push a finger,
//!   the palm or the carried object into an object or the table stops at the
//!   last collision-free sub-step.
//! * `a[6]`: gripper, **1 = open, 0 = closed** (absolute, not a delta),
//!   clipped to `[0, 1]`; values in between give a proportional opening.
//!   The finger gap target is `a[6]·MAX_OPENING` (0.09 m); the fingers can
//!   travel the full stroke within one action.
//! * An action must have exactly 7 finite components; anything else is
//!   rejected with an error and the world is left unchanged.
//!
//! # Timing
//! Each action is interpolated linearly over `substeps` sub-frames (default
//! [`DEFAULT_SUBSTEPS`] = 8) and every sub-frame can be rendered, so a chunk
//! of 6 actions spans 48 frames; with the current frame that is the 49 frames
//! VideoVLA predicts. Frame `k·substeps` shows the state *before* action `k`
//! (frame 0 is the reset state); frames `k·substeps+1 ..= (k+1)·substeps`
//! show action `k` being executed. Closed-loop control executes the first
//! `execute` (default 3) actions of each `chunk` (default 6) and re-plans.
//!
//! # Physics (simple but not fake)
//! * A grasp happens only while the fingers close around an object: the
//!   object's centre must lie between the finger pads (within the pad depth
//!   along the gripper's local `x`, and fully between the fingers along local
//!   `y`), the fingers must overlap the object's side by at least 1 cm
//!   vertically, and the gripper must be nearly upright (|roll|, |pitch| <=
//!   0.1 rad). The fingers then stop at the object's width.
//! * A carried object moves rigidly with the TCP (position and yaw; objects
//!   stay upright). Objects resting on it are carried along.
//! * Opening the gripper releases the object; it falls under gravity onto
//!   the table or onto the object under its centre (only flat tops — cubes,
//!   bars, cylinders — support). If its footprint would overlap another
//!   object it slides off to the nearest free spot on the table.
//! * Objects never interpenetrate: object–object collisions use vertical
//!   cylinders (circumscribed radius); finger–object tests use the exact
//!   footprint. The collision geometry ignores the wrist tilt (|tilt| <=
//!   0.3 rad), which only changes the rendering.
//!
//! # Objects
//! Upright rigid bodies resting on the table or on each other (sizes in m):
//! cube 0.066, bar 0.12 × 0.048 × 0.048, cylinder ⌀0.062 × 0.085,
//! ball ⌀0.072, cone ⌀0.08 × 0.08; in 8 colours.
//!
//! # Tasks and splits
//! `pick` ("pick up the red cube"), `stack` ("put the red cube on the blue
//! bar") and `place` ("put the red cube next to the blue bar"), each with
//! four phrasings; 5 shapes × 8 colours; the `novel` split's target is one of
//! 8 held-out colour/shape combinations. See [`tasks`].
//!
//! # Library use
//! ```
//! use videovla::sim::{make_policy, Split, TaskKind, World};
//! let mut world = World::reset(TaskKind::Stack, Split::Train, 7);
//! let image = world.render(64, 64); // 64*64*3 RGB bytes
//! assert_eq!(image.len(), 64 * 64 * 3);
//! let mut policy = make_policy("expert", 6, 7).unwrap();
//! while !world.success() && world.steps < 60 {
//!     let chunk = policy.act(&world.observation(64)).unwrap();
//!     for a in chunk.iter().take(3) {
//!         world.step(a).unwrap();
//!     }
//! }
//! assert!(world.success(), "{}", world.instruction());
//! assert!(world.step(&[0.0; 6]).is_err()); // wrong length: rejected
//! ```
//! [`eval::run_episode`] runs this loop with frame callbacks; the CLI is
//! `videovla sim record|eval|show|bench`.
//!
//! # Determinism
//! Every random choice comes from a ChaCha8 RNG seeded from `(split, seed)`;
//! transcendental functions come from `libm`; no hash-map iteration or
//! threads influence outputs. The same seed gives the same bytes on any
//! x86-64 machine (`tests/sim.rs` hashes rendered frames).

pub mod dataset;
pub mod eval;
pub mod expert;
pub mod geom;
pub mod imagine;
pub mod model_policy;
pub mod policy;
pub mod remote_policy;
pub mod render;
pub mod tasks;
pub mod world;

pub use eval::{run_episode, EpisodeConfig, EpisodeOutcome, EvalReport};
pub use expert::expert_action;
pub use policy::{make_policy, ExpertPolicy, Observation, Policy, RandomPolicy};
pub use render::Camera;
pub use tasks::{Split, TaskKind};
pub use world::{Action, Color, EePose, Object, Shape, World};

/// Simulated seconds per action.
pub const ACTION_SECONDS: f32 = 0.2;
/// Default number of rendered sub-frames per action.
pub const DEFAULT_SUBSTEPS: usize = 8;
/// Half side of the square table top (m).
pub const TABLE_HALF: f32 = 0.24;
/// Half side of the square the TCP may move in (m).
pub const WORKSPACE_HALF: f32 = 0.20;
/// Lowest TCP height (m): the fingertips stop just above the table.
pub const Z_MIN: f32 = 0.005;
/// Highest TCP height (m).
pub const Z_MAX: f32 = 0.30;
/// Per-action translation limit, per axis (m).
pub const MAX_TRANS_STEP: f32 = 0.04;
/// Per-action rotation limit, per axis (rad).
pub const MAX_ROT_STEP: f32 = 0.25;
/// Roll and pitch limits (rad).
pub const MAX_TILT: f32 = 0.30;
/// Largest finger gap (m).
pub const MAX_OPENING: f32 = 0.09;
/// Action dimension.
pub const ACTION_DIM: usize = 7;
/// Seeds at or above this are reserved for evaluation; training data uses seeds below it.
pub const EVAL_SEED_START: u64 = 1_000_000;
