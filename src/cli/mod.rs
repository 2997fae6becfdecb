//! Command-line front end. Each subcommand lives in its own file and owns its clap `Args`.

use clap::{Parser, Subcommand};

/// `println!` for the command line's output: when stdout is a closed pipe (`videovla sim show … | head`)
/// the process ends quietly, like other Unix tools, instead of panicking with "Broken pipe".
/// (Rust ignores SIGPIPE so that sockets — `serve`, the viewer's robot link — report EPIPE as an error;
/// restoring the default signal would let a vanished robot client kill the server.)
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::cli::stdout_failed(e);
        }
    }};
}

/// Where `outln!` goes when stdout cannot be written.
pub(crate) fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to stdout ({e}); check where the output is redirected");
    std::process::exit(1);
}

pub mod bench;
pub mod compare;
pub mod convert;
pub mod flops;
pub mod predict;
pub mod serve;
pub mod sim;
pub mod viewer;

#[derive(Parser, Debug)]
#[command(name = "videovla", version, about = "Run VideoVLA and look at what it imagines")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The built-in tabletop robot: record datasets, evaluate policies, show rollouts.
    Sim(sim::SimArgs),
    /// Predict the imagined video and the action chunk for one image and instruction.
    Predict(predict::PredictArgs),
    /// Time one full predict stage by stage (optionally beside the PyTorch reference).
    Bench(bench::BenchArgs),
    /// Convert an official PyTorch checkpoint (DiT or SAT VAE) into a model folder.
    Convert(convert::ConvertArgs),
    /// FLOPs per denoising step of a model and the floor they imply on a given peak.
    Flops(flops::FlopsArgs),
    /// Open the desktop imagination viewer (also what `videovla` with no arguments does).
    Viewer(viewer::ViewerArgs),
    /// Serve the model over openpi's websocket policy protocol (robots connect unchanged).
    Serve(serve::ServeArgs),
    /// Motion similarity (and PSNR/SSIM) of an imagined clip and an executed clip.
    Compare(compare::CompareArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Sim(args)) => sim::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Convert(args)) => convert::run(args),
        Some(Command::Flops(args)) => flops::run(args),
        Some(Command::Viewer(args)) => viewer::run(args),
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Compare(args)) => compare::run(args),
        None => viewer::run(viewer::ViewerArgs::default()),
    }
}
