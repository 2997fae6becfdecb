//! Tiny 3-D vector maths with bit-reproducible trigonometry (`libm`).

use std::ops::{Add, Mul, Neg, Sub};

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct V3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

impl V3 {
    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        V3 { x, y, z }
    }
    pub fn dot(self, o: V3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    pub fn cross(self, o: V3) -> V3 {
        V3::new(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }
    pub fn norm(self) -> f32 {
        self.dot(self).sqrt()
    }
    pub fn normalized(self) -> V3 {
        let n = self.norm();
        if n > 0.0 {
            self * (1.0 / n)
        } else {
            self
        }
    }
    /// Horizontal distance to `o`.
    pub fn dist_xy(self, o: V3) -> f32 {
        let dx = self.x - o.x;
        let dy = self.y - o.y;
        (dx * dx + dy * dy).sqrt()
    }
}

impl Add for V3 {
    type Output = V3;
    fn add(self, o: V3) -> V3 {
        V3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}
impl Sub for V3 {
    type Output = V3;
    fn sub(self, o: V3) -> V3 {
        V3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}
impl Mul<f32> for V3 {
    type Output = V3;
    fn mul(self, s: f32) -> V3 {
        V3::new(self.x * s, self.y * s, self.z * s)
    }
}
impl Neg for V3 {
    type Output = V3;
    fn neg(self) -> V3 {
        V3::new(-self.x, -self.y, -self.z)
    }
}

pub fn sin(a: f32) -> f32 {
    libm::sinf(a)
}
pub fn cos(a: f32) -> f32 {
    libm::cosf(a)
}
pub fn atan2(y: f32, x: f32) -> f32 {
    libm::atan2f(y, x)
}

/// Wrap an angle to `(-π, π]`.
pub fn wrap_angle(a: f32) -> f32 {
    let two_pi = 2.0 * std::f32::consts::PI;
    let mut a = a % two_pi;
    if a > std::f32::consts::PI {
        a -= two_pi;
    } else if a <= -std::f32::consts::PI {
        a += two_pi;
    }
    a
}

/// Rotate `(x, y)` by `yaw` about the z axis.
pub fn rot2(x: f32, y: f32, yaw: f32) -> (f32, f32) {
    let (s, c) = (sin(yaw), cos(yaw));
    (c * x - s * y, s * x + c * y)
}

/// A 3×3 rotation matrix, row-major.
#[derive(Clone, Copy, Debug)]
pub struct Mat3(pub [[f32; 3]; 3]);

impl Mat3 {
    /// `Rz(yaw)·Ry(pitch)·Rx(roll)`.
    pub fn from_rpy(roll: f32, pitch: f32, yaw: f32) -> Mat3 {
        let (sr, cr) = (sin(roll), cos(roll));
        let (sp, cp) = (sin(pitch), cos(pitch));
        let (sy, cy) = (sin(yaw), cos(yaw));
        Mat3([
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ])
    }
    pub fn yaw(yaw: f32) -> Mat3 {
        Mat3::from_rpy(0.0, 0.0, yaw)
    }
    pub fn apply(&self, v: V3) -> V3 {
        let m = &self.0;
        V3::new(
            m[0][0] * v.x + m[0][1] * v.y + m[0][2] * v.z,
            m[1][0] * v.x + m[1][1] * v.y + m[1][2] * v.z,
            m[2][0] * v.x + m[2][1] * v.y + m[2][2] * v.z,
        )
    }
}

/// FNV-1a 64-bit hash (stable across platforms and Rust versions).
pub fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
/// The FNV-1a offset basis, the starting value for [`fnv1a`].
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::{FRAC_PI_2, PI};

    #[test]
    fn wrap_angle_maps_into_minus_pi_to_pi() {
        assert!((wrap_angle(1.5 * PI) + FRAC_PI_2).abs() < 1e-6);
        assert_eq!(wrap_angle(PI), PI);
        assert!((wrap_angle(-PI) - PI).abs() < 1e-6);
        assert!((wrap_angle(7.0 * PI + 0.1) - (-PI + 0.1)).abs() < 1e-5);
    }

    #[test]
    fn rpy_matrix_is_rz_ry_rx() {
        let (r, p, y) = (0.2f32, -0.3f32, 1.1f32);
        let m = Mat3::from_rpy(r, p, y);
        let v = V3::new(0.3, -0.5, 0.8);
        // Apply Rx, then Ry, then Rz by hand.
        let vx = V3::new(v.x, cos(r) * v.y - sin(r) * v.z, sin(r) * v.y + cos(r) * v.z);
        let vy = V3::new(cos(p) * vx.x + sin(p) * vx.z, vx.y, -sin(p) * vx.x + cos(p) * vx.z);
        let vz = V3::new(cos(y) * vy.x - sin(y) * vy.y, sin(y) * vy.x + cos(y) * vy.y, vy.z);
        assert!((m.apply(v) - vz).norm() < 1e-6);
        let (x, yy) = rot2(1.0, 0.0, FRAC_PI_2);
        assert!(x.abs() < 1e-6 && (yy - 1.0).abs() < 1e-6);
    }

    #[test]
    fn fnv1a_matches_the_reference_value() {
        assert_eq!(fnv1a(b"a", FNV_OFFSET), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"", FNV_OFFSET), FNV_OFFSET);
    }
}
