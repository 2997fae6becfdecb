//! From a chunk of 7-D actions to a 3-D end-effector trajectory.

use nalgebra::{Rotation3, UnitQuaternion, Vector3};
use serde::{Deserialize, Serialize};

/// How a rotation delta composes with the current orientation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RotationRule {
    /// OXE / SimplerEnv `ee_align`: `R ← R(Δroll, Δpitch, Δyaw) · R` (base-frame delta).
    #[default]
    DeltaRotation,
    /// The built-in simulator: the deltas are added to the (roll, pitch, yaw) angles.
    EulerAdd,
}

/// An end-effector pose: position (m, base frame), orientation, gripper opening (1 open).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub position: Vector3<f32>,
    pub rotation: UnitQuaternion<f32>,
    pub gripper: f32,
}

impl Default for Pose {
    fn default() -> Self {
        Self { position: Vector3::zeros(), rotation: UnitQuaternion::identity(), gripper: 1.0 }
    }
}

impl Pose {
    /// From `[x, y, z, roll, pitch, yaw, gripper]` ('sxyz': R = Rz·Ry·Rx).
    pub fn from_xyz_rpy(v: &[f32; 7]) -> Self {
        Self {
            position: Vector3::new(v[0], v[1], v[2]),
            rotation: UnitQuaternion::from_euler_angles(v[3], v[4], v[5]),
            gripper: v[6],
        }
    }

    /// `(roll, pitch, yaw)` of the orientation.
    pub fn rpy(&self) -> (f32, f32, f32) {
        self.rotation.euler_angles()
    }

    /// The orientation's axes (columns of R): the triad drawn in the 3-D view.
    pub fn axes(&self) -> [Vector3<f32>; 3] {
        let m: Rotation3<f32> = self.rotation.to_rotation_matrix();
        [m.matrix().column(0).into(), m.matrix().column(1).into(), m.matrix().column(2).into()]
    }
}

/// Roll/pitch/yaw ('sxyz', as `transforms3d.euler2axangle`) → axis-angle vector (axis · angle).
pub fn rpy_to_axis_angle(roll: f32, pitch: f32, yaw: f32) -> [f32; 3] {
    let q = UnitQuaternion::from_euler_angles(roll, pitch, yaw);
    let v = q.scaled_axis();
    [v.x, v.y, v.z]
}

/// Integrate raw (unnormalised) actions from `start`: `p ← p + Δp`, the rotation per `rule`,
/// the gripper taken as the commanded absolute value. Returns `actions.len() + 1` poses,
/// the start first.
pub fn integrate(start: Pose, actions: &[Vec<f32>], rule: RotationRule) -> Vec<Pose> {
    let mut out = Vec::with_capacity(actions.len() + 1);
    out.push(start);
    let mut pose = start;
    for a in actions {
        let get = |i: usize| a.get(i).copied().unwrap_or(0.0);
        pose.position += Vector3::new(get(3), get(4), get(5));
        pose.rotation = match rule {
            RotationRule::DeltaRotation => UnitQuaternion::from_euler_angles(get(0), get(1), get(2)) * pose.rotation,
            RotationRule::EulerAdd => {
                let (r, p, y) = pose.rotation.euler_angles();
                UnitQuaternion::from_euler_angles(r + get(0), p + get(1), y + get(2))
            }
        };
        if a.len() > 6 {
            pose.gripper = get(6);
        }
        out.push(pose);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_angle_of_a_pure_yaw_is_along_z() {
        let v = rpy_to_axis_angle(0.0, 0.0, 0.5);
        assert!(v[0].abs() < 1e-6 && v[1].abs() < 1e-6 && (v[2] - 0.5).abs() < 1e-6);
        let w = rpy_to_axis_angle(0.3, 0.0, 0.0);
        assert!((w[0] - 0.3).abs() < 1e-6);
    }

    #[test]
    fn integration_adds_translations_and_composes_rotations() {
        let acts = vec![vec![0.0, 0.0, 0.1, 0.01, 0.0, -0.02, 0.0], vec![0.0, 0.0, 0.1, 0.01, 0.02, 0.0, 1.0]];
        let traj = integrate(Pose::default(), &acts, RotationRule::DeltaRotation);
        assert_eq!(traj.len(), 3);
        let p = traj[2].position;
        assert!((p.x - 0.02).abs() < 1e-7 && (p.y - 0.02).abs() < 1e-7 && (p.z + 0.02).abs() < 1e-7);
        assert!((traj[2].rpy().2 - 0.2).abs() < 1e-6);
        assert_eq!(traj[1].gripper, 0.0);
        assert_eq!(traj[2].gripper, 1.0);
        // For rotations about one axis both rules agree; for mixed ones they differ.
        let mixed = vec![vec![0.3, 0.2, 0.0, 0.0, 0.0, 0.0, 1.0]; 2];
        let a = integrate(Pose::default(), &mixed, RotationRule::DeltaRotation);
        let b = integrate(Pose::default(), &mixed, RotationRule::EulerAdd);
        assert!(a[2].rotation.angle_to(&b[2].rotation) > 1e-3);
    }
}
