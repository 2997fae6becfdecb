//! The 3-D trajectory rendered with wgpu through an `egui_wgpu` paint callback, with a depth
//! buffer: in `prepare` the scene (path tubes, triads, gripper-state cubes, ground grid,
//! highlighted current step) is drawn into an offscreen colour + depth target; in `paint` that
//! image is blitted into egui's render pass (so it works whatever depth/MSAA egui's own pass has).
//!
//! Pipelines live in `egui_wgpu::Renderer::callback_resources` (installed once by
//! [`install`]); without a wgpu render state the viewer falls back to the CPU painter.

use eframe::egui_wgpu::{self, wgpu};
use nalgebra::{Matrix4, Point3, Vector3};
use wgpu::util::DeviceExt;

use crate::action::view::{bounds, gripper_rgb, scene_scale, OrbitCamera};
use crate::action::Pose;

const SCENE_SHADER: &str = r#"
struct U { view_proj: mat4x4<f32> };
@group(0) @binding(0) var<uniform> u: U;
struct VOut { @builtin(position) pos: vec4<f32>, @location(0) color: vec3<f32> };
@vertex fn vs_main(@location(0) p: vec3<f32>, @location(1) c: vec3<f32>) -> VOut {
    var o: VOut;
    o.pos = u.view_proj * vec4<f32>(p, 1.0);
    o.color = c;
    return o;
}
@fragment fn fs_main(i: VOut) -> @location(0) vec4<f32> { return vec4<f32>(i.color, 1.0); }
"#;

const BLIT_SHADER: &str = r#"
@group(0) @binding(0) var t: texture_2d<f32>;
@group(0) @binding(1) var s: sampler;
struct VOut { @builtin(position) pos: vec4<f32>, @location(0) uv: vec2<f32> };
@vertex fn vs_main(@builtin(vertex_index) i: u32) -> VOut {
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    var o: VOut;
    o.pos = vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0);
    o.uv = uv;
    return o;
}
@fragment fn fs_main(i: VOut) -> @location(0) vec4<f32> { return textureSample(t, s, i.uv); }
"#;

const COLOR_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;
const BACKGROUND: [f64; 3] = [24.0 / 255.0, 26.0 / 255.0, 32.0 / 255.0];

#[repr(C)]
#[derive(Clone, Copy)]
struct Vertex {
    p: [f32; 3],
    c: [f32; 3],
}

fn vertex_bytes(v: &[Vertex]) -> &[u8] {
    // SAFETY: Vertex is repr(C), 6 f32 with no padding.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

struct Target {
    size: [u32; 2],
    color: wgpu::TextureView,
    depth: wgpu::TextureView,
    blit: wgpu::BindGroup,
}

/// GPU state shared by all frames (in the renderer's callback resources).
pub struct GpuTrajectory {
    scene: wgpu::RenderPipeline,
    blit: wgpu::RenderPipeline,
    uniform: wgpu::Buffer,
    uniform_bg: wgpu::BindGroup,
    blit_layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    target: Option<Target>,
    vertices: Option<(wgpu::Buffer, u64)>,
    count: u32,
}

/// Create the pipelines once. Returns false when there is no wgpu render state.
pub fn install(cc: &eframe::CreationContext<'_>) -> bool {
    let Some(rs) = cc.wgpu_render_state.as_ref() else { return false };
    let device = &rs.device;
    let scene_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("trajectory-scene"),
        source: wgpu::ShaderSource::Wgsl(SCENE_SHADER.into()),
    });
    let blit_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("trajectory-blit"),
        source: wgpu::ShaderSource::Wgsl(BLIT_SHADER.into()),
    });
    let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("trajectory-uniform"),
        contents: &[0u8; 64],
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    });
    let uniform_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("trajectory-uniform"),
        entries: &[wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::VERTEX,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }],
    });
    let uniform_bg = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("trajectory-uniform"),
        layout: &uniform_layout,
        entries: &[wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }],
    });
    let scene_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("trajectory-scene"),
        bind_group_layouts: &[Some(&uniform_layout)],
        immediate_size: 0,
    });
    let scene = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("trajectory-scene"),
        layout: Some(&scene_layout),
        vertex: wgpu::VertexState {
            module: &scene_module,
            entry_point: Some("vs_main"),
            buffers: &[Some(wgpu::VertexBufferLayout {
                array_stride: std::mem::size_of::<Vertex>() as u64,
                step_mode: wgpu::VertexStepMode::Vertex,
                attributes: &wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3],
            })],
            compilation_options: Default::default(),
        },
        primitive: wgpu::PrimitiveState { cull_mode: None, ..Default::default() },
        depth_stencil: Some(wgpu::DepthStencilState {
            format: DEPTH_FORMAT,
            depth_write_enabled: Some(true),
            depth_compare: Some(wgpu::CompareFunction::Less),
            stencil: Default::default(),
            bias: Default::default(),
        }),
        multisample: Default::default(),
        fragment: Some(wgpu::FragmentState {
            module: &scene_module,
            entry_point: Some("fs_main"),
            targets: &[Some(wgpu::ColorTargetState { format: COLOR_FORMAT, blend: None, write_mask: wgpu::ColorWrites::ALL })],
            compilation_options: Default::default(),
        }),
        multiview_mask: None,
        cache: None,
    });
    let blit_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("trajectory-blit"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Texture {
                    multisampled: false,
                    sample_type: wgpu::TextureSampleType::Float { filterable: true },
                    view_dimension: wgpu::TextureViewDimension::D2,
                },
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 1,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                count: None,
            },
        ],
    });
    let blit_pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("trajectory-blit"),
        bind_group_layouts: &[Some(&blit_layout)],
        immediate_size: 0,
    });
    // Must match egui's own render pass: its target format, one sample, no depth (the
    // viewer's NativeOptions and kittest's defaults).
    let blit = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("trajectory-blit"),
        layout: Some(&blit_pl),
        vertex: wgpu::VertexState { module: &blit_module, entry_point: Some("vs_main"), buffers: &[], compilation_options: Default::default() },
        primitive: Default::default(),
        depth_stencil: None,
        multisample: Default::default(),
        fragment: Some(wgpu::FragmentState {
            module: &blit_module,
            entry_point: Some("fs_main"),
            targets: &[Some(wgpu::ColorTargetState { format: rs.target_format, blend: None, write_mask: wgpu::ColorWrites::ALL })],
            compilation_options: Default::default(),
        }),
        multiview_mask: None,
        cache: None,
    });
    let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
        label: Some("trajectory-blit"),
        mag_filter: wgpu::FilterMode::Linear,
        min_filter: wgpu::FilterMode::Linear,
        ..Default::default()
    });
    rs.renderer.write().callback_resources.insert(GpuTrajectory {
        scene,
        blit,
        uniform,
        uniform_bg,
        blit_layout,
        sampler,
        target: None,
        vertices: None,
        count: 0,
    });
    true
}

/// One frame's scene, handed to the paint callback.
struct Frame {
    vertices: Vec<Vertex>,
    view_proj: [f32; 16],
    size: [u32; 2],
}

impl egui_wgpu::CallbackTrait for Frame {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(r) = resources.get_mut::<GpuTrajectory>() else { return Vec::new() };
        if r.target.as_ref().map(|t| t.size) != Some(self.size) {
            let extent = wgpu::Extent3d { width: self.size[0], height: self.size[1], depth_or_array_layers: 1 };
            let make = |format, usage, label| {
                device
                    .create_texture(&wgpu::TextureDescriptor {
                        label: Some(label),
                        size: extent,
                        mip_level_count: 1,
                        sample_count: 1,
                        dimension: wgpu::TextureDimension::D2,
                        format,
                        usage,
                        view_formats: &[],
                    })
                    .create_view(&Default::default())
            };
            let color = make(
                COLOR_FORMAT,
                wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
                "trajectory-color",
            );
            let depth = make(DEPTH_FORMAT, wgpu::TextureUsages::RENDER_ATTACHMENT, "trajectory-depth");
            let blit = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("trajectory-blit"),
                layout: &r.blit_layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::TextureView(&color) },
                    wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::Sampler(&r.sampler) },
                ],
            });
            r.target = Some(Target { size: self.size, color, depth, blit });
        }
        let bytes: Vec<u8> = self.view_proj.iter().flat_map(|f| f.to_le_bytes()).collect();
        queue.write_buffer(&r.uniform, 0, &bytes);
        let data = vertex_bytes(&self.vertices);
        if r.vertices.as_ref().is_none_or(|(_, cap)| *cap < data.len() as u64) {
            let cap = (data.len() as u64).next_power_of_two().max(1024);
            let buf = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("trajectory-vertices"),
                size: cap,
                usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            r.vertices = Some((buf, cap));
        }
        let (vbuf, _) = r.vertices.as_ref().expect("vertex buffer");
        if !data.is_empty() {
            queue.write_buffer(vbuf, 0, data);
        }
        r.count = self.vertices.len() as u32;
        let t = r.target.as_ref().expect("target");
        let [br, bg, bb] = BACKGROUND;
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("trajectory"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &t.color,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color { r: br, g: bg, b: bb, a: 1.0 }),
                    store: wgpu::StoreOp::Store,
                },
                depth_slice: None,
            })],
            depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                view: &t.depth,
                depth_ops: Some(wgpu::Operations { load: wgpu::LoadOp::Clear(1.0), store: wgpu::StoreOp::Discard }),
                stencil_ops: None,
            }),
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        if r.count > 0 {
            pass.set_pipeline(&r.scene);
            pass.set_bind_group(0, &r.uniform_bg, &[]);
            pass.set_vertex_buffer(0, vbuf.slice(..));
            pass.draw(0..r.count, 0..1);
        }
        Vec::new()
    }

    fn paint(&self, _info: egui::PaintCallbackInfo, pass: &mut wgpu::RenderPass<'static>, resources: &egui_wgpu::CallbackResources) {
        let Some(r) = resources.get::<GpuTrajectory>() else { return };
        let Some(t) = &r.target else { return };
        pass.set_pipeline(&r.blit);
        pass.set_bind_group(0, &t.blit, &[]);
        pass.draw(0..3, 0..1);
    }
}

fn rgbf(c: [u8; 3], shade: f32) -> [f32; 3] {
    [c[0] as f32 / 255.0 * shade, c[1] as f32 / 255.0 * shade, c[2] as f32 / 255.0 * shade]
}

/// A square tube from `a` to `b` with half-width `r` (4 shaded sides + 2 caps).
fn tube(out: &mut Vec<Vertex>, a: Vector3<f32>, b: Vector3<f32>, r: f32, rgb: [u8; 3]) {
    let d = b - a;
    if d.norm() < 1e-9 {
        return;
    }
    let dir = d.normalize();
    let helper = if dir.z.abs() < 0.9 { Vector3::z() } else { Vector3::x() };
    let u = dir.cross(&helper).normalize() * r;
    let v = dir.cross(&u).normalize() * r;
    let corners = [u + v, -u + v, -u - v, u - v];
    let shades = [1.0, 0.8, 0.6, 0.75];
    for i in 0..4 {
        let (c0, c1) = (corners[i], corners[(i + 1) % 4]);
        let c = rgbf(rgb, shades[i]);
        for p in [a + c0, a + c1, b + c1, a + c0, b + c1, b + c0] {
            out.push(Vertex { p: p.into(), c });
        }
    }
    for (end, s) in [(a, 0.7), (b, 0.9)] {
        let c = rgbf(rgb, s);
        for p in [end + corners[0], end + corners[1], end + corners[2], end + corners[0], end + corners[2], end + corners[3]] {
            out.push(Vertex { p: p.into(), c });
        }
    }
}

/// An axis-aligned cube (as three tubes' worth of faces: a short fat tube along z).
fn cube(out: &mut Vec<Vertex>, centre: Vector3<f32>, half: f32, rgb: [u8; 3]) {
    tube(out, centre - Vector3::z() * half, centre + Vector3::z() * half, half, rgb);
}

/// The trajectory scene as triangles (world coordinates).
fn scene(poses: &[Pose], current: usize) -> Vec<Vertex> {
    let mut v = Vec::new();
    if poses.is_empty() {
        return v;
    }
    let scale = scene_scale(poses);
    let (lo, hi) = bounds(poses);
    let centre = (lo + hi) * 0.5;
    let gz = lo.z - 0.1 * scale;
    let half = scale * 0.75;
    let n = 10;
    let w = 0.0025 * scale;
    for i in 0..=n {
        let t = -half + 2.0 * half * i as f32 / n as f32;
        let grey = if i == n / 2 { [150, 150, 160] } else { [90, 90, 100] };
        tube(&mut v, Vector3::new(centre.x + t, centre.y - half, gz), Vector3::new(centre.x + t, centre.y + half, gz), w, grey);
        tube(&mut v, Vector3::new(centre.x - half, centre.y + t, gz), Vector3::new(centre.x + half, centre.y + t, gz), w, grey);
    }
    for win in poses.windows(2) {
        tube(&mut v, win[0].position, win[1].position, 0.012 * scale, gripper_rgb(win[1].gripper));
    }
    let colours = [[235, 60, 60], [60, 220, 60], [70, 110, 255]];
    for (i, p) in poses.iter().enumerate() {
        let strong = i == current;
        let len = 0.18 * scale * if strong { 1.6 } else { 1.0 };
        let r = if strong { 0.009 } else { 0.005 } * scale;
        for (a, c) in p.axes().iter().zip(colours) {
            tube(&mut v, p.position, p.position + a * len, r, c);
        }
        cube(&mut v, p.position, 0.025 * scale, gripper_rgb(p.gripper));
        if strong {
            // A yellow frame around the current pose.
            let h = 0.06 * scale;
            let e = 0.006 * scale;
            for sx in [-1.0f32, 1.0] {
                for sy in [-1.0f32, 1.0] {
                    let base = p.position + Vector3::new(sx * h, sy * h, 0.0);
                    tube(&mut v, base - Vector3::z() * h, base + Vector3::z() * h, e, [255, 220, 40]);
                }
            }
            for sz in [-1.0f32, 1.0] {
                let z = Vector3::z() * sz * h;
                let c = [
                    Vector3::new(-h, -h, 0.0),
                    Vector3::new(h, -h, 0.0),
                    Vector3::new(h, h, 0.0),
                    Vector3::new(-h, h, 0.0),
                ];
                for k in 0..4 {
                    tube(&mut v, p.position + z + c[k], p.position + z + c[(k + 1) % 4], e, [255, 220, 40]);
                }
            }
        }
    }
    v
}

fn view_proj(cam: &OrbitCamera, aspect: f32, scale: f32) -> [f32; 16] {
    let eye = Point3::from(cam.eye());
    let view = Matrix4::look_at_rh(&eye, &Point3::from(cam.target), &Vector3::z());
    let near = (cam.distance * 0.01).max(1e-4);
    let far = cam.distance * 10.0 + scale * 10.0;
    let proj = Matrix4::new_perspective(aspect.max(1e-3), cam.fov, near, far);
    // OpenGL clip z (−1..1) → wgpu (0..1).
    #[rustfmt::skip]
    let fix = Matrix4::new(
        1.0, 0.0, 0.0, 0.0,
        0.0, 1.0, 0.0, 0.0,
        0.0, 0.0, 0.5, 0.5,
        0.0, 0.0, 0.0, 1.0,
    );
    let m = fix * proj * view;
    let mut out = [0f32; 16];
    out.copy_from_slice(m.as_slice());
    out
}

/// Add the paint callback drawing `poses` into `rect`.
pub fn paint(ui: &egui::Ui, rect: egui::Rect, poses: &[Pose], current: usize, cam: &OrbitCamera) {
    let ppp = ui.ctx().pixels_per_point();
    let size = [(rect.width() * ppp).round().max(1.0) as u32, (rect.height() * ppp).round().max(1.0) as u32];
    let frame = Frame {
        vertices: scene(poses, current),
        view_proj: view_proj(cam, rect.width() / rect.height().max(1.0), scene_scale(poses)),
        size,
    };
    ui.painter().add(egui_wgpu::Callback::new_paint_callback(rect, frame));
}
