//! Start-up shared by the examples: logging, shard count and pinning from
//! the command line, `--metrics`, `--tls-cert`/`--tls-key` (TLS on the
//! example's port, certificate reloaded on SIGHUP), graceful stop on
//! SIGINT / SIGTERM (a second signal stops at once).

// Each example uses some of these helpers.
#![allow(dead_code)]

use anyhow::Context;
use shardloop::endpoint::Listen;
use shardloop::tls::TlsServerConfig;
use shardloop::{Handle, Pinning, ServerBuilder, SocketOptions};
use std::path::PathBuf;

/// Command-line options every example takes.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Every shard accepts on its own SO_REUSEPORT socket (no acceptor
    /// thread): cheapest for short-lived connections.
    #[arg(long)]
    pub reuse_port: bool,
    /// Serve TLS on the port with this certificate chain (PEM, leaf first).
    /// SIGHUP reloads it and the key without a restart.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require TLS clients to present a certificate signed by a CA in this
    /// PEM file (mutual TLS).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// ALPN protocols to offer with TLS, comma-separated (e.g. http/1.1).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        requires = "tls_cert"
    )]
    pub tls_alpn: Vec<String>,
    /// Run as this placement file says (`shardloop-tune topology --write
    /// FILE`): the shard count, each shard's CPU, the acceptor's. Refused
    /// if it does not fit this machine; not with --shards or --cores.
    #[arg(long, value_name = "FILE")]
    pub placement: Option<PathBuf>,
    /// I/O backend, as Seastar's flag: epoll (readiness) or io-uring
    /// (completion; falls back to epoll, with a log line, where the kernel
    /// does not offer it). Default: the SHARDLOOP_BACKEND environment
    /// variable, else epoll.
    #[arg(long, value_name = "NAME")]
    pub reactor_backend: Option<shardloop::Backend>,
}

impl ServeArgs {
    /// The TLS configuration the options ask for, if any.
    /// The example's listener on `addr`, with `--reuse-port` and the TLS
    /// options applied (the certificate is reloaded on SIGHUP).
    pub fn listen(&self, addr: impl Into<Listen>) -> anyhow::Result<Listen> {
        let options = SocketOptions {
            reuse_port: Some(self.reuse_port),
            ..SocketOptions::default()
        };
        let mut listen = addr.into().socket_options(options);
        if let Some((tls, cert, key)) = self.tls()? {
            listen = listen.tls(tls.clone());
            reload_on_sighup(tls, cert, key)?;
        }
        Ok(listen)
    }

    fn tls(&self) -> anyhow::Result<Option<(TlsServerConfig, PathBuf, PathBuf)>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let mut b = TlsServerConfig::from_pem_files(cert, key)
            .context("--tls-cert/--tls-key")?
            .alpn(&self.tls_alpn);
        if let Some(ca) = &self.tls_client_ca {
            b = b.client_ca_file(ca).context("--tls-client-ca")?;
        }
        let tls = b.build().context("TLS settings")?;
        Ok(Some((tls, cert.clone(), key.clone())))
    }
}

/// TLS configurations to reload on SIGHUP, registered with the server's
/// handle once it exists (`start`).
static RELOADS: std::sync::Mutex<Vec<(TlsServerConfig, PathBuf, PathBuf)>> =
    std::sync::Mutex::new(Vec::new());

/// Reloads the certificate and key on every reload (SIGHUP: certbot's
/// renew hook sends one), logging the outcome; a bad file leaves the old
/// one serving.
fn reload_on_sighup(tls: TlsServerConfig, cert: PathBuf, key: PathBuf) -> anyhow::Result<()> {
    RELOADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((tls, cert, key));
    Ok(())
}

/// Logs through `tracing`, filtered by `RUST_LOG` (default: info).
pub fn init_logging() {
    // Logs go to stderr: stdout is the program's own output (the address
    // line scripts read).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
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
    serve: &ServeArgs,
) -> anyhow::Result<Handle> {
    if let Some(file) = &serve.placement {
        if shards.is_some() || !cores.is_empty() {
            anyhow::bail!("--placement says how many shards and where: drop --shards and --cores");
        }
        builder = builder.placement(shardloop::Placement::load(file)?);
    }
    if let Some(n) = shards {
        builder = builder.shards(n);
    }
    if let Some(b) = serve.reactor_backend {
        builder = builder.backend(b);
    }
    if !cores.is_empty() {
        builder = builder.pinning(Pinning::Cores(cores.to_vec()));
    }
    if let Some(addr) = &serve.metrics {
        builder = builder.metrics(addr.as_str());
    }
    // SIGINT/SIGTERM stop gracefully; SIGHUP reloads (never kills).
    let handle = builder
        .handle_signals(true)
        .systemd_activation(true)
        .build()?
        .start()?;
    tracing::info!(backend = %handle.backend(), "I/O backend");
    for (tls, cert, key) in RELOADS.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        handle.on_reload(move |_| match tls.reload_pem_files(&cert, &key) {
            Ok(()) => tracing::info!(cert = %cert.display(), "TLS certificate reloaded"),
            Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the old certificate"),
        });
    }
    Ok(handle)
}

/// `--no-pin` as a pinning choice.
pub fn pinning(no_pin: bool) -> Pinning {
    if no_pin {
        Pinning::Off
    } else {
        Pinning::Auto
    }
}
