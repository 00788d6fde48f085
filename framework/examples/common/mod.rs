//! Start-up shared by the examples: logging, shard count and pinning from
//! the command line, `--metrics`, graceful stop on SIGINT / SIGTERM (a
//! second signal stops at once).

use shardloop::{Handle, ServerBuilder};

/// Command-line options every example takes.
#[derive(clap::Args, Debug, Default)]
pub struct Telemetry {
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
}

/// Logs through `tracing`, filtered by `RUST_LOG` (default: info).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// Applies `--shards`, `--cores` and `--metrics`, starts the server, and
/// makes SIGINT and SIGTERM stop it gracefully.
pub fn start(
    mut builder: ServerBuilder,
    shards: Option<usize>,
    cores: &[usize],
    telemetry: &Telemetry,
) -> anyhow::Result<Handle> {
    if let Some(n) = shards {
        builder = builder.shards(n);
    }
    if !cores.is_empty() {
        builder = builder.pin_to_cores(cores.to_vec());
    }
    if let Some(addr) = &telemetry.metrics {
        builder = builder.metrics(addr.as_str());
    }
    Ok(builder
        .handle_signals(true)
        .systemd_activation(true)
        .build()?
        .start()?)
}
