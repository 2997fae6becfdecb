//! Comparing imagination with reality: image quality (PSNR, SSIM) of imagined frames against
//! the frames the robot (or the simulator) produces when the predicted actions are executed,
//! and the motion similarity of the two (paper §5.7).

pub mod metrics;
pub mod motion;

pub use metrics::{psnr, ssim, ClipScores};
pub use motion::{motion_similarity, MotionOptions, MotionScore};
