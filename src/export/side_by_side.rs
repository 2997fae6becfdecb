//! The side-by-side clip: observation | imagination | 3-D trajectory, one row per frame.

use crate::action::view::{draw_trajectory, pose_index_for_frame, OrbitCamera};
use crate::action::Pose;

/// Software-rasterise the trajectory drawing into a `w`×`h` image (dark background).
pub fn trajectory_image(poses: &[Pose], current: Option<usize>, cam: &OrbitCamera, w: u32, h: u32) -> image::RgbImage {
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([24, 26, 32]));
    let d = draw_trajectory(poses, current, cam, w as f32, h as f32);
    let put = |img: &mut image::RgbImage, x: f32, y: f32, rgb: [u8; 3]| {
        if x >= 0.0 && y >= 0.0 && (x as u32) < w && (y as u32) < h {
            img.put_pixel(x as u32, y as u32, image::Rgb(rgb));
        }
    };
    for s in &d.segments {
        let (dx, dy) = (s.b[0] - s.a[0], s.b[1] - s.a[1]);
        let n = dx.abs().max(dy.abs()).ceil().clamp(1.0, 4096.0) as usize;
        let r = ((s.width - 1.0) * 0.5).max(0.0).round() as i32;
        for i in 0..=n {
            let t = i as f32 / n as f32;
            let (x, y) = (s.a[0] + dx * t, s.a[1] + dy * t);
            for oy in -r..=r {
                for ox in -r..=r {
                    put(&mut img, x + ox as f32, y + oy as f32, s.rgb);
                }
            }
        }
    }
    for dot in &d.dots {
        let r = dot.radius.ceil() as i32;
        for oy in -r..=r {
            for ox in -r..=r {
                if ((ox * ox + oy * oy) as f32) <= dot.radius * dot.radius {
                    put(&mut img, dot.centre[0] + ox as f32, dot.centre[1] + oy as f32, dot.rgb);
                }
            }
        }
    }
    img
}

/// One frame per imagined frame: the observation, the imagined frame and the trajectory with
/// the matching pose highlighted, each `panel`×`panel` pixels.
pub fn side_by_side_frames(observation: &image::RgbImage, frames: &[image::RgbImage], poses: &[Pose], panel: u32) -> Vec<image::RgbImage> {
    use image::imageops::{overlay, resize, FilterType};
    let obs = resize(observation, panel, panel, FilterType::Triangle);
    let cam = OrbitCamera::fit(poses);
    let actions = poses.len().saturating_sub(1);
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut out = image::RgbImage::new(panel * 3, panel);
            overlay(&mut out, &obs, 0, 0);
            overlay(&mut out, &resize(f, panel, panel, FilterType::Triangle), panel as i64, 0);
            let cur = pose_index_for_frame(i, frames.len(), actions);
            overlay(&mut out, &trajectory_image(poses, Some(cur), &cam, panel, panel), 2 * panel as i64, 0);
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector3;

    #[test]
    fn the_clip_has_three_panels_and_the_trajectory_is_drawn() {
        let poses: Vec<Pose> = (0..7)
            .map(|i| Pose { position: Vector3::new(0.02 * i as f32, 0.0, 0.1), gripper: (i < 4) as u8 as f32, ..Default::default() })
            .collect();
        let obs = image::RgbImage::from_pixel(64, 64, image::Rgb([200, 10, 10]));
        let frames = vec![image::RgbImage::from_pixel(64, 64, image::Rgb([10, 200, 10])); 9];
        let clip = side_by_side_frames(&obs, &frames, &poses, 96);
        assert_eq!(clip.len(), 9);
        assert_eq!(clip[0].dimensions(), (288, 96));
        assert_eq!(clip[0].get_pixel(10, 10).0, [200, 10, 10]);
        assert_eq!(clip[0].get_pixel(110, 10).0, [10, 200, 10]);
        // The trajectory panel is not just background, and the highlight moves with the frame.
        let bg = [24, 26, 32];
        let drawn = (192..288).flat_map(|x| (0..96).map(move |y| (x, y))).filter(|&(x, y)| clip[0].get_pixel(x, y).0 != bg).count();
        assert!(drawn > 200, "{drawn}");
        assert_ne!(clip[0], clip[8]);
    }
}
