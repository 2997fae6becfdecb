//! Action semantics: what VideoVLA's 7-D output means and how to turn a chunk into robot
//! commands and a 3-D end-effector trajectory (`../shared/docs/robot-protocol.md`).
//!
//! * `stats`: OpenVLA/CogACT `dataset_statistics.json` (q01/q99/mask) unnormalisation.
//! * `trajectory`: roll/pitch/yaw → axis-angle and integration from a start pose.
//!
//! Layout of one action (the paper's §4.1 and the built-in simulator, `crate::sim`):
//! `[droll, dpitch, dyaw, dx, dy, dz, gripper]` — rotation delta (rad), translation delta
//! (m, base frame), gripper (1 open, 0 closed).

pub mod stats;
pub mod trajectory;
pub mod view;

pub use stats::ActionStats;
pub use trajectory::{integrate, rpy_to_axis_angle, Pose, RotationRule};

/// Index ranges of the 7-D action.
pub const ROT: std::ops::Range<usize> = 0..3;
pub const TRANS: std::ops::Range<usize> = 3..6;
pub const GRIPPER: usize = 6;

/// The commands a robot executes from a raw (normalised) chunk: unnormalised with `stats`
/// (normalised dims clipped to [-1, 1] first) and the gripper binarised at 0.5, as CogACT does.
pub fn to_commands(raw: &[Vec<f32>], stats: Option<&ActionStats>) -> anyhow::Result<Vec<Vec<f32>>> {
    raw.iter()
        .map(|a| {
            let mut a = match stats {
                Some(s) => s.unnormalize(a, true)?,
                None => a.clone(),
            };
            if let Some(g) = a.get_mut(GRIPPER) {
                *g = if *g > 0.5 { 1.0 } else { 0.0 };
            }
            Ok(a)
        })
        .collect()
}
