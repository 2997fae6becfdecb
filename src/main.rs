use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = videovla::cli::Cli::parse();
    if let Err(e) = videovla::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
