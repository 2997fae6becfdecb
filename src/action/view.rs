//! A small orbit camera for drawing end-effector trajectories in 3-D on the CPU
//! (the viewer's trajectory panel and the exported side-by-side clip share it).

use nalgebra::Vector3;

use super::Pose;

/// Looks at `target` from `distance`, rotated by `yaw` around +z and raised by `pitch`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrbitCamera {
    pub target: Vector3<f32>,
    pub yaw: f32,
    pub pitch: f32,
    pub distance: f32,
    /// Vertical field of view (radians).
    pub fov: f32,
}

impl Default for OrbitCamera {
    fn default() -> Self {
        Self { target: Vector3::zeros(), yaw: 0.9, pitch: 0.55, distance: 1.0, fov: 0.8 }
    }
}

impl OrbitCamera {
    /// A camera that frames every position of `poses` (and the start).
    pub fn fit(poses: &[Pose]) -> Self {
        let (lo, hi) = bounds(poses);
        let centre = (lo + hi) * 0.5;
        let radius = ((hi - lo).norm() * 0.5).max(0.02);
        let mut c = Self { target: centre, ..Self::default() };
        c.distance = radius / (c.fov * 0.5).tan() * 1.4;
        c
    }

    pub fn eye(&self) -> Vector3<f32> {
        let (cp, sp) = (self.pitch.cos(), self.pitch.sin());
        self.target + Vector3::new(cp * self.yaw.cos(), cp * self.yaw.sin(), sp) * self.distance
    }

    /// Orbit by a mouse drag (pixels).
    pub fn orbit(&mut self, dx: f32, dy: f32) {
        self.yaw -= dx * 0.01;
        self.pitch = (self.pitch + dy * 0.01).clamp(-1.5, 1.5);
    }

    /// Pan by a mouse drag (pixels) in a view `height` pixels tall.
    pub fn pan(&mut self, dx: f32, dy: f32, height: f32) {
        let (right, up, _) = self.basis();
        let scale = 2.0 * self.distance * (self.fov * 0.5).tan() / height.max(1.0);
        self.target += (-right * dx + up * dy) * scale;
    }

    /// Zoom by a factor (> 1 moves closer).
    pub fn zoom(&mut self, factor: f32) {
        self.distance = (self.distance / factor.max(1e-3)).clamp(1e-3, 1e3);
    }

    fn basis(&self) -> (Vector3<f32>, Vector3<f32>, Vector3<f32>) {
        let fwd = (self.target - self.eye()).normalize();
        let mut right = fwd.cross(&Vector3::z());
        if right.norm() < 1e-6 {
            right = Vector3::x();
        }
        let right = right.normalize();
        let up = right.cross(&fwd);
        (right, up, fwd)
    }

    /// Project a world point into a `w`×`h` viewport: `(x, y, depth)` with y down,
    /// or `None` when it is behind the camera.
    pub fn project(&self, p: Vector3<f32>, w: f32, h: f32) -> Option<(f32, f32, f32)> {
        let (right, up, fwd) = self.basis();
        let d = p - self.eye();
        let z = d.dot(&fwd);
        if z <= 1e-4 {
            return None;
        }
        let f = (h * 0.5) / (self.fov * 0.5).tan();
        Some((w * 0.5 + d.dot(&right) / z * f, h * 0.5 - d.dot(&up) / z * f, z))
    }
}

/// A projected line segment (screen pixels, y down).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub a: [f32; 2],
    pub b: [f32; 2],
    /// Mean distance from the camera (for back-to-front drawing).
    pub depth: f32,
    pub rgb: [u8; 3],
    pub width: f32,
}

/// A projected disc.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dot {
    pub centre: [f32; 2],
    pub depth: f32,
    pub radius: f32,
    pub rgb: [u8; 3],
}

/// Everything the trajectory view draws, sorted back to front.
#[derive(Debug, Clone, Default)]
pub struct Drawing {
    pub segments: Vec<Segment>,
    pub dots: Vec<Dot>,
}

/// Colour of the gripper state: open green, closed red.
pub fn gripper_rgb(opening: f32) -> [u8; 3] {
    if opening >= 0.5 {
        [60, 200, 90]
    } else {
        [230, 70, 50]
    }
}

/// Project the trajectory scene: a ground grid under the path, the end-effector path coloured
/// by gripper state, an orientation triad (x red, y green, z blue) at every pose, and the
/// `current` pose highlighted.
pub fn draw_trajectory(poses: &[Pose], current: Option<usize>, cam: &OrbitCamera, w: f32, h: f32) -> Drawing {
    let mut d = Drawing::default();
    if poses.is_empty() {
        return d;
    }
    let scale = scene_scale(poses);
    let (lo, hi) = bounds(poses);
    let seg = |d: &mut Drawing, a: Vector3<f32>, b: Vector3<f32>, rgb: [u8; 3], width: f32| {
        if let (Some(pa), Some(pb)) = (cam.project(a, w, h), cam.project(b, w, h)) {
            d.segments.push(Segment { a: [pa.0, pa.1], b: [pb.0, pb.1], depth: (pa.2 + pb.2) * 0.5, rgb, width });
        }
    };
    // Ground grid: 10×10 cells at the lowest point, a margin around the path.
    let gz = lo.z - 0.1 * scale;
    let centre = (lo + hi) * 0.5;
    let half = scale * 0.75;
    let n = 10;
    for i in 0..=n {
        let t = -half + 2.0 * half * i as f32 / n as f32;
        let grey = if i == n / 2 { [150, 150, 160] } else { [90, 90, 100] };
        seg(&mut d, Vector3::new(centre.x + t, centre.y - half, gz), Vector3::new(centre.x + t, centre.y + half, gz), grey, 1.0);
        seg(&mut d, Vector3::new(centre.x - half, centre.y + t, gz), Vector3::new(centre.x + half, centre.y + t, gz), grey, 1.0);
    }
    // Path, coloured by the gripper command of the action that ends there.
    for win in poses.windows(2) {
        seg(&mut d, win[0].position, win[1].position, gripper_rgb(win[1].gripper), 3.0);
    }
    // Triads.
    let len = 0.18 * scale;
    for (i, p) in poses.iter().enumerate() {
        let strong = current == Some(i);
        let width = if strong { 3.0 } else { 1.5 };
        let axes = p.axes();
        let colours = [[235, 60, 60], [60, 220, 60], [70, 110, 255]];
        for (a, c) in axes.iter().zip(colours) {
            seg(&mut d, p.position, p.position + a * len * if strong { 1.6 } else { 1.0 }, c, width);
        }
        if let Some(pp) = cam.project(p.position, w, h) {
            d.dots.push(Dot { centre: [pp.0, pp.1], depth: pp.2, radius: 3.5, rgb: gripper_rgb(p.gripper) });
            if strong {
                d.dots.push(Dot { centre: [pp.0, pp.1], depth: pp.2 + 1e-4, radius: 7.0, rgb: [255, 220, 40] });
            }
        }
    }
    d.segments.sort_by(|a, b| b.depth.total_cmp(&a.depth));
    d.dots.sort_by(|a, b| b.depth.total_cmp(&a.depth));
    d
}

/// Axis-aligned bounds of the positions.
pub fn bounds(poses: &[Pose]) -> (Vector3<f32>, Vector3<f32>) {
    let mut lo = Vector3::repeat(f32::INFINITY);
    let mut hi = Vector3::repeat(f32::NEG_INFINITY);
    for p in poses {
        lo = lo.inf(&p.position);
        hi = hi.sup(&p.position);
    }
    if poses.is_empty() {
        (Vector3::zeros(), Vector3::zeros())
    } else {
        (lo, hi)
    }
}

/// A length that suits the trajectory's size for triads and grid cells.
pub fn scene_scale(poses: &[Pose]) -> f32 {
    let (lo, hi) = bounds(poses);
    ((hi - lo).norm()).max(0.02)
}

/// Which pose (0..=actions) the video frame `frame` of `frames` shows: frame 0 is the start
/// pose, the last frame the pose after the last action.
pub fn pose_index_for_frame(frame: usize, frames: usize, actions: usize) -> usize {
    if frames <= 1 {
        return 0;
    }
    let f = frame.min(frames - 1);
    ((f * actions) as f32 / (frames - 1) as f32).round() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_projects_to_the_centre_and_up_is_up() {
        let c = OrbitCamera { target: Vector3::new(0.1, 0.2, 0.3), ..Default::default() };
        let (x, y, z) = c.project(c.target, 200.0, 100.0).unwrap();
        assert!((x - 100.0).abs() < 1e-3 && (y - 50.0).abs() < 1e-3 && z > 0.0);
        let (_, y_up, _) = c.project(c.target + Vector3::new(0.0, 0.0, 0.05), 200.0, 100.0).unwrap();
        assert!(y_up < 50.0);
        // Behind the camera: nothing.
        assert!(c.project(c.eye() * 2.0 - c.target, 200.0, 100.0).is_none());
    }

    #[test]
    fn fit_frames_every_pose_and_frames_map_to_poses() {
        let poses: Vec<Pose> = (0..7)
            .map(|i| Pose { position: Vector3::new(i as f32 * 0.03, -0.1, 0.2 - i as f32 * 0.02), ..Default::default() })
            .collect();
        let c = OrbitCamera::fit(&poses);
        for p in &poses {
            let (x, y, _) = c.project(p.position, 300.0, 300.0).unwrap();
            assert!((0.0..300.0).contains(&x) && (0.0..300.0).contains(&y), "{x} {y}");
        }
        let d = draw_trajectory(&poses, Some(3), &c, 300.0, 300.0);
        // 22 grid lines + 6 path segments + 3 axes per pose.
        assert_eq!(d.segments.len(), 22 + 6 + 21);
        assert!(d.dots.iter().any(|p| p.rgb == [255, 220, 40]));
        assert!(d.segments.windows(2).all(|w| w[0].depth >= w[1].depth));
        assert_eq!(pose_index_for_frame(0, 49, 6), 0);
        assert_eq!(pose_index_for_frame(8, 49, 6), 1);
        assert_eq!(pose_index_for_frame(48, 49, 6), 6);
        assert_eq!(pose_index_for_frame(8, 9, 6), 6);
    }
}
