//! Start-up shared by the examples: logging, shard count and pinning from
//! the command line, graceful stop on Ctrl-C / SIGTERM.

use shardloop::{Handle, ServerBuilder};

/// Logs through `tracing`, filtered by `RUST_LOG` (default: info).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// Applies `--shards` and `--cores`, starts the server, and makes Ctrl-C
/// and SIGTERM stop it gracefully.
pub fn start(
    mut builder: ServerBuilder,
    shards: Option<usize>,
    cores: &[usize],
) -> anyhow::Result<Handle> {
    if let Some(n) = shards {
        builder = builder.shards(n);
    }
    if !cores.is_empty() {
        builder = builder.pin_to_cores(cores.to_vec());
    }
    let handle = builder.build()?.start()?;
    let stopper = handle.clone();
    ctrlc::set_handler(move || stopper.stop())?;
    Ok(handle)
}
