//! Software renderer: perspective camera, z-buffer, flat Lambert shading and
//! contact shadows on the table. Pure `f32` arithmetic with `libm`
//! trigonometry, single-threaded: bit-reproducible across x86-64 machines.

use std::sync::OnceLock;

use super::geom::{self, Mat3, V3};
use super::world::{Object, Shape, World, FINGER_D, FINGER_H, FINGER_T, PALM_H};
use super::{MAX_OPENING, TABLE_HALF};

/// A pinhole camera looking from `eye` at `target` (z up).
#[derive(Clone, Copy, Debug)]
pub struct Camera {
    pub eye: V3,
    pub target: V3,
    /// Vertical field of view in degrees.
    pub fov_y_deg: f32,
}

impl Default for Camera {
    /// Third-person view facing the robot from across the table, slightly to
    /// its left, looking down at about 45°: the workspace fills the frame.
    fn default() -> Self {
        Camera { eye: V3::new(0.50, 0.08, 0.60), target: V3::new(-0.02, 0.0, 0.08), fov_y_deg: 42.0 }
    }
}

const TABLE_RGB: [f32; 3] = [0.56, 0.50, 0.44];
const TABLE_EDGE_RGB: [f32; 3] = [0.40, 0.35, 0.30];
const FLOOR_RGB: [f32; 3] = [0.20, 0.22, 0.26];
const FINGER_RGB: [f32; 3] = [0.16, 0.16, 0.18];
const PALM_RGB: [f32; 3] = [0.30, 0.30, 0.34];
const WRIST_RGB: [f32; 3] = [0.45, 0.45, 0.50];
const AMBIENT: f32 = 0.45;
const DIFFUSE: f32 = 0.60;
const SHADOW: f32 = 0.45;
const WRIST_LEN: f32 = 0.16;

fn light_dir() -> V3 {
    V3::new(0.35, 0.25, 1.0).normalized()
}

/// Triangles with outward face normals, in a local frame.
#[derive(Clone, Debug, Default)]
pub struct Mesh {
    pub tris: Vec<[V3; 3]>,
    pub normals: Vec<V3>,
}

impl Mesh {
    /// Add a triangle; its normal is made to point away from `inside`.
    fn tri(&mut self, a: V3, b: V3, c: V3, inside: V3) {
        let mut n = (b - a).cross(c - a).normalized();
        let centroid = (a + b + c) * (1.0 / 3.0);
        if n.dot(centroid - inside) < 0.0 {
            n = -n;
        }
        self.tris.push([a, b, c]);
        self.normals.push(n);
    }
    fn quad(&mut self, a: V3, b: V3, c: V3, d: V3, inside: V3) {
        self.tri(a, b, c, inside);
        self.tri(a, c, d, inside);
    }
    /// An axis-aligned box with centre `c` and half extents `h`.
    pub fn cuboid(c: V3, h: V3) -> Mesh {
        let mut m = Mesh::default();
        let p = |sx: f32, sy: f32, sz: f32| V3::new(c.x + sx * h.x, c.y + sy * h.y, c.z + sz * h.z);
        for s in [-1.0f32, 1.0] {
            m.quad(p(s, -1., -1.), p(s, 1., -1.), p(s, 1., 1.), p(s, -1., 1.), c);
            m.quad(p(-1., s, -1.), p(1., s, -1.), p(1., s, 1.), p(-1., s, 1.), c);
            m.quad(p(-1., -1., s), p(1., -1., s), p(1., 1., s), p(-1., 1., s), c);
        }
        m
    }
    /// A frustum of a cone standing on z = 0 (a cylinder when `r0 == r1`), no bottom cap.
    pub fn frustum(r0: f32, r1: f32, h: f32, segments: usize) -> Mesh {
        let mut m = Mesh::default();
        let inside = V3::new(0.0, 0.0, h * 0.3);
        let ring = |r: f32, z: f32, i: usize| {
            let a = 2.0 * std::f32::consts::PI * i as f32 / segments as f32;
            V3::new(r * geom::cos(a), r * geom::sin(a), z)
        };
        for i in 0..segments {
            let (a0, a1) = (ring(r0, 0.0, i), ring(r0, 0.0, i + 1));
            let (b0, b1) = (ring(r1, h, i), ring(r1, h, i + 1));
            if r1 > 0.0 {
                m.quad(a0, a1, b1, b0, inside);
                m.tri(V3::new(0.0, 0.0, h), b0, b1, inside);
            } else {
                m.tri(a0, a1, V3::new(0.0, 0.0, h), inside);
            }
        }
        m
    }
    /// A UV sphere of radius `r` resting on z = 0.
    pub fn sphere(r: f32, stacks: usize, slices: usize) -> Mesh {
        let mut m = Mesh::default();
        let c = V3::new(0.0, 0.0, r);
        let pt = |i: usize, j: usize| {
            let th = std::f32::consts::PI * i as f32 / stacks as f32;
            let ph = 2.0 * std::f32::consts::PI * j as f32 / slices as f32;
            let s = geom::sin(th);
            c + V3::new(r * s * geom::cos(ph), r * s * geom::sin(ph), r * geom::cos(th))
        };
        for i in 0..stacks {
            for j in 0..slices {
                let (a, b, cc, d) = (pt(i, j), pt(i, j + 1), pt(i + 1, j + 1), pt(i + 1, j));
                if i == 0 {
                    m.tri(a, cc, d, c);
                } else if i + 1 == stacks {
                    m.tri(a, b, cc, c);
                } else {
                    m.quad(a, b, cc, d, c);
                }
            }
        }
        m
    }
}

/// The mesh of each shape, in the object frame (origin at the bottom centre).
pub fn shape_mesh(shape: Shape) -> &'static Mesh {
    static MESHES: OnceLock<Vec<Mesh>> = OnceLock::new();
    let meshes = MESHES.get_or_init(|| {
        Shape::ALL
            .iter()
            .map(|&s| match s {
                Shape::Cube | Shape::Bar => {
                    let (hx, hy) = s.box_half().unwrap_or((0.02, 0.02));
                    let hz = s.height() * 0.5;
                    Mesh::cuboid(V3::new(0.0, 0.0, hz), V3::new(hx, hy, hz))
                }
                Shape::Cylinder => Mesh::frustum(s.radius(), s.radius(), s.height(), 16),
                Shape::Cone => Mesh::frustum(s.radius(), 0.0, s.height(), 16),
                Shape::Ball => Mesh::sphere(s.radius(), 7, 12),
            })
            .collect()
    });
    let i = Shape::ALL.iter().position(|&x| x == shape).unwrap_or(0);
    &meshes[i]
}

/// Default supersampling factor per axis: anti-aliased edges let sub-pixel
/// motion show at 64×64. Observations and recorded frames both use it.
pub const DEFAULT_SSAA: usize = 2;

/// Reusable render buffers.
#[derive(Clone, Debug)]
pub struct Renderer {
    pub camera: Camera,
    /// Supersampling factor per axis (1 = none).
    pub ssaa: usize,
    depth: Vec<f32>,
    color: Vec<u8>,
    ground: Vec<Ground>,
    ground_key: Option<(usize, usize, [V3; 2], f32)>,
}

struct View {
    eye: V3,
    right: V3,
    up: V3,
    fwd: V3,
    focal: f32,
    cx: f32,
    cy: f32,
    light: V3,
}

impl View {
    fn new(cam: &Camera, w: usize, h: usize) -> View {
        let fwd = (cam.target - cam.eye).normalized();
        let right = fwd.cross(V3::new(0.0, 0.0, 1.0)).normalized();
        let up = right.cross(fwd);
        let half = (cam.fov_y_deg.to_radians() * 0.5).clamp(0.01, 1.5);
        let focal = (h as f32 * 0.5) / (geom::sin(half) / geom::cos(half));
        View { eye: cam.eye, right, up, fwd, focal, cx: w as f32 * 0.5, cy: h as f32 * 0.5, light: light_dir() }
    }
    /// Screen x, y and inverse depth.
    fn project(&self, p: V3) -> Option<(f32, f32, f32)> {
        let d = p - self.eye;
        let z = d.dot(self.fwd);
        if z < 0.02 {
            return None;
        }
        let iz = 1.0 / z;
        Some((self.cx + d.dot(self.right) * self.focal * iz, self.cy - d.dot(self.up) * self.focal * iz, iz))
    }
}

struct Target<'a> {
    w: usize,
    h: usize,
    depth: &'a mut [f32],
    color: &'a mut [u8],
}

impl Target<'_> {
    fn triangle(&mut self, v: &View, tri: [V3; 3], rgb: [u8; 3]) {
        let (Some(a), Some(b), Some(c)) = (v.project(tri[0]), v.project(tri[1]), v.project(tri[2])) else {
            return;
        };
        let area = (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0);
        if area.abs() < 1e-9 {
            return;
        }
        let inv = 1.0 / area;
        let x0 = a.0.min(b.0).min(c.0).floor().max(0.0) as usize;
        let x1 = (a.0.max(b.0).max(c.0).ceil().max(0.0) as usize).min(self.w);
        let y0 = a.1.min(b.1).min(c.1).floor().max(0.0) as usize;
        let y1 = (a.1.max(b.1).max(c.1).ceil().max(0.0) as usize).min(self.h);
        for y in y0..y1 {
            let py = y as f32 + 0.5;
            for x in x0..x1 {
                let px = x as f32 + 0.5;
                let w0 = ((b.0 - px) * (c.1 - py) - (b.1 - py) * (c.0 - px)) * inv;
                let w1 = ((c.0 - px) * (a.1 - py) - (c.1 - py) * (a.0 - px)) * inv;
                let w2 = 1.0 - w0 - w1;
                if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                    continue;
                }
                let iz = w0 * a.2 + w1 * b.2 + w2 * c.2;
                let idx = y * self.w + x;
                if iz > self.depth[idx] {
                    self.depth[idx] = iz;
                    self.color[idx * 3..idx * 3 + 3].copy_from_slice(&rgb);
                }
            }
        }
    }

    /// Draw `mesh` rotated by `rot`, translated by `pos`, in albedo `rgb`.
    fn mesh(&mut self, v: &View, mesh: &Mesh, rot: &Mat3, pos: V3, rgb: [f32; 3]) {
        for (tri, n) in mesh.tris.iter().zip(&mesh.normals) {
            let t = [rot.apply(tri[0]) + pos, rot.apply(tri[1]) + pos, rot.apply(tri[2]) + pos];
            let n = rot.apply(*n);
            if n.dot(t[0] - v.eye) >= 0.0 {
                continue; // back face
            }
            let shade = AMBIENT + DIFFUSE * n.dot(v.light).max(0.0);
            self.triangle(v, t, quantize(rgb, shade));
        }
    }
}

fn quantize(rgb: [f32; 3], s: f32) -> [u8; 3] {
    let q = |c: f32| ((c * s).clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
    [q(rgb[0]), q(rgb[1]), q(rgb[2])]
}

/// A shadow caster: the footprint test and its darkness.
enum Caster<'a> {
    Object(&'a Object, f32),
    Disc(f32),
}

fn height_falloff(z: f32) -> f32 {
    (1.0 - z / 0.35).clamp(0.25, 1.0)
}

impl Default for Renderer {
    fn default() -> Renderer {
        Renderer::new(Camera::default(), DEFAULT_SSAA)
    }
}

impl Renderer {
    pub fn new(camera: Camera, ssaa: usize) -> Renderer {
        Renderer { camera, ssaa, depth: Vec::new(), color: Vec::new(), ground: Vec::new(), ground_key: None }
    }

    /// Render `world` into `out` as `width*height*3` RGB bytes (row-major, top row first).
    pub fn render_into(&mut self, world: &World, width: usize, height: usize, out: &mut Vec<u8>) {
        let k = self.ssaa.max(1);
        let (w, h) = (width * k, height * k);
        self.depth.clear();
        self.depth.resize(w * h, 0.0);
        self.color.clear();
        self.color.resize(w * h * 3, 0);
        let view = View::new(&self.camera, w, h);
        let key = (w, h, [self.camera.eye, self.camera.target], self.camera.fov_y_deg);
        if self.ground_key != Some(key) {
            self.ground = ground_map(&view, w, h);
            self.ground_key = Some(key);
        }
        let mut t = Target { w, h, depth: &mut self.depth, color: &mut self.color };
        for o in &world.objects {
            t.mesh(&view, shape_mesh(o.shape), &Mat3::yaw(o.yaw), o.pos, o.color.rgb());
        }
        draw_gripper(&mut t, &view, world);
        shade_background(&mut t, &view, &self.ground, world);
        out.clear();
        if k == 1 {
            out.extend_from_slice(&self.color);
            return;
        }
        // Box filter: average each k×k block (integer arithmetic, round half up).
        out.reserve(width * height * 3);
        let n = (k * k) as u32;
        let mut acc = vec![0u32; width * 3];
        for y in 0..height {
            acc.fill(0);
            for dy in 0..k {
                let row = &self.color[(y * k + dy) * w * 3..(y * k + dy + 1) * w * 3];
                for (a, block) in acc.chunks_exact_mut(3).zip(row.chunks_exact(k * 3)) {
                    for px in block.chunks_exact(3) {
                        a[0] += px[0] as u32;
                        a[1] += px[1] as u32;
                        a[2] += px[2] as u32;
                    }
                }
            }
            out.extend(acc.iter().map(|&s| ((s + n / 2) / n) as u8));
        }
    }
}

fn draw_gripper(t: &mut Target, v: &View, world: &World) {
    let g = &world.gripper;
    let rot = Mat3::from_rpy(g.roll, g.pitch, g.yaw);
    let fy = g.opening * 0.5 + FINGER_T * 0.5;
    for side in [-1.0f32, 1.0] {
        let m = Mesh::cuboid(
            V3::new(0.0, side * fy, FINGER_H * 0.5),
            V3::new(FINGER_D * 0.5, FINGER_T * 0.5, FINGER_H * 0.5),
        );
        t.mesh(v, &m, &rot, g.pos, FINGER_RGB);
    }
    let palm = Mesh::cuboid(
        V3::new(0.0, 0.0, FINGER_H + PALM_H * 0.5),
        V3::new(FINGER_D * 0.5 + 0.004, MAX_OPENING * 0.5 + FINGER_T, PALM_H * 0.5),
    );
    t.mesh(v, &palm, &rot, g.pos, PALM_RGB);
    let wrist = Mesh::cuboid(
        V3::new(0.0, 0.0, FINGER_H + PALM_H + WRIST_LEN * 0.5),
        V3::new(0.012, 0.012, WRIST_LEN * 0.5),
    );
    t.mesh(v, &wrist, &rot, g.pos, WRIST_RGB);
}

/// What the camera ray through a pixel hits when no geometry is in the way.
#[derive(Clone, Copy, Debug)]
enum Ground {
    Floor,
    TableEdge,
    /// Table top at base-frame (x, y).
    Table(f32, f32),
}

fn ground_map(v: &View, w: usize, h: usize) -> Vec<Ground> {
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let sx = (x as f32 + 0.5 - v.cx) / v.focal;
            let sy = (v.cy - (y as f32 + 0.5)) / v.focal;
            let dir = v.fwd + v.right * sx + v.up * sy;
            let g = if dir.z < 0.0 {
                let s = -v.eye.z / dir.z;
                let (px, py) = (v.eye.x + dir.x * s, v.eye.y + dir.y * s);
                if px.abs() > TABLE_HALF || py.abs() > TABLE_HALF {
                    Ground::Floor
                } else if px.abs() > TABLE_HALF - 0.008 || py.abs() > TABLE_HALF - 0.008 {
                    Ground::TableEdge
                } else {
                    Ground::Table(px, py)
                }
            } else {
                Ground::Floor
            };
            out.push(g);
        }
    }
    out
}

/// Fill pixels no geometry covered: the table (with contact shadows) or the floor.
fn shade_background(t: &mut Target, v: &View, ground: &[Ground], world: &World) {
    let g = &world.gripper;
    let mut casters: Vec<(f32, f32, f32, Caster)> = Vec::with_capacity(world.objects.len() + 1);
    for o in &world.objects {
        let r = o.shape.collision_radius() + 0.01;
        casters.push((o.pos.x, o.pos.y, r, Caster::Object(o, SHADOW * height_falloff(o.pos.z))));
    }
    let gr = g.opening * 0.5 + FINGER_T;
    casters.push((g.pos.x, g.pos.y, gr, Caster::Disc(SHADOW * height_falloff(g.pos.z))));
    let lit = quantize(TABLE_RGB, AMBIENT + DIFFUSE * v.light.z);
    let edge = quantize(TABLE_EDGE_RGB, AMBIENT + DIFFUSE * v.light.z);
    let floor = quantize(FLOOR_RGB, 1.0);
    for (idx, gr) in ground.iter().enumerate() {
        if t.depth[idx] > 0.0 {
            continue;
        }
        let rgb = match *gr {
            Ground::Floor => floor,
            Ground::TableEdge => edge,
            Ground::Table(px, py) => {
                let mut dark = 0.0f32;
                for (cx, cy, r, c) in &casters {
                    let (dx, dy) = (px - cx, py - cy);
                    if dx * dx + dy * dy > r * r {
                        continue;
                    }
                    let d = match c {
                        Caster::Object(o, d) => o.footprint_hits(px, py, 0.006).then_some(*d),
                        Caster::Disc(d) => Some(*d),
                    };
                    dark = dark.max(d.unwrap_or(0.0));
                }
                if dark > 0.0 {
                    quantize(TABLE_RGB, (AMBIENT + DIFFUSE * v.light.z) * (1.0 - dark))
                } else {
                    lit
                }
            }
        };
        t.color[idx * 3..idx * 3 + 3].copy_from_slice(&rgb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Split, TaskKind};

    #[test]
    fn meshes_are_closed_enough_and_face_outwards() {
        assert_eq!(shape_mesh(Shape::Cube).tris.len(), 12);
        for s in Shape::ALL {
            let m = shape_mesh(s);
            let centre = V3::new(0.0, 0.0, s.height() * 0.4);
            for (t, n) in m.tris.iter().zip(&m.normals) {
                let c = (t[0] + t[1] + t[2]) * (1.0 / 3.0);
                assert!(n.dot(c - centre) > 0.0, "{s:?} has an inward face");
                for v in t {
                    assert!(v.z >= -1e-6 && v.z <= s.height() + 1e-6, "{s:?} vertex outside its height");
                }
            }
        }
    }

    #[test]
    fn renders_any_resolution_and_supersamples() {
        let w = World::reset(TaskKind::Pick, Split::Train, 5);
        for (wd, ht) in [(80, 48), (64, 64), (17, 9)] {
            let img = w.render(wd, ht);
            assert_eq!(img.len(), wd * ht * 3);
            assert!(img.chunks(3).any(|p| p != &img[0..3]), "{wd}x{ht} image is uniform");
        }
        let mut out = Vec::new();
        Renderer::new(Camera::default(), 2).render_into(&w, 64, 64, &mut out);
        assert_eq!(out.len(), 64 * 64 * 3);
        let mut plain = Vec::new();
        Renderer::new(Camera::default(), 1).render_into(&w, 64, 64, &mut plain);
        assert!(out != plain, "supersampled edges differ");
    }

    #[test]
    fn shadow_rim_is_visible_and_fades_with_height() {
        let w = World::reset(TaskKind::Pick, Split::Train, 5);
        let o = &w.objects[0];
        let g = ground_map(&View::new(&Camera::default(), 64, 64), 64, 64);
        // A table pixel right next to the object's footprint.
        let near = g.iter().position(|gr| match *gr {
            Ground::Table(x, y) => o.footprint_hits(x, y, 0.004) && !o.footprint_hits(x, y, 0.0),
            _ => false,
        });
        assert!(near.is_some(), "the object's shadow rim is visible");
        assert!(height_falloff(0.0) > height_falloff(0.2));
    }
}
