//! From the command line to a `Config`: the workload, the target (and TLS),
//! the segment's share, the synchronised start.

use crate::args::{ArrivalsArg, RunArgs};
use anyhow::{bail, Context};
use shardloop::tls::TlsClientConfig;
use shardloop_loadgen::plan::{Arrivals, RatePlan};
use shardloop_loadgen::segment::Segment;
use shardloop_loadgen::{Config, Mode, TlsTarget};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

fn resolve(hostport: &str) -> anyhow::Result<SocketAddr> {
    hostport
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {hostport:?} (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("{hostport:?} resolved to no address"))
}

pub(crate) fn build_config(a: &RunArgs) -> anyhow::Result<Config> {
    let target = a.target.as_deref().expect("clap requires the target");
    let (url, https) = match (
        target.strip_prefix("http://"),
        target.strip_prefix("https://"),
    ) {
        (Some(rest), _) => (Some(rest), false),
        (_, Some(rest)) => (Some(rest), true),
        _ => (None, false),
    };
    let (hostport, path, is_url) = match url {
        Some(rest) => {
            let (hp, path) = match rest.find('/') {
                Some(i) => (&rest[..i], rest[i..].to_string()),
                None => (rest, "/".to_string()),
            };
            let hp = if hp.contains(':') || hp.starts_with('[') && hp.contains("]:") {
                hp.to_string()
            } else {
                format!("{hp}:{}", if https { 443 } else { 80 })
            };
            (hp, path, true)
        }
        None if target.contains("://") => {
            bail!("unsupported URL scheme in {target:?} (http:// or https://)")
        }
        None => (target.to_string(), "/".to_string(), false),
    };
    let tls = if a.tls || https {
        Some(tls_target(a, &hostport, https)?)
    } else {
        if a.tls_ca.is_some() || a.insecure || a.sni.is_some() || !a.alpn.is_empty() {
            bail!("--tls-ca, --insecure, --sni and --alpn need --tls (or an https:// target)");
        }
        None
    };
    let addr = resolve(&hostport)?;
    let workload = a
        .workload
        .build(is_url, &hostport, &path, &a.method, a.body.as_deref())?;
    let plan = a
        .rate
        .as_deref()
        .map(|r| RatePlan::parse(r, a.duration))
        .transpose()
        .map_err(|e| anyhow::anyhow!("-R: {e}"))?;
    let mode = match &plan {
        Some(p) => Mode::Open {
            rate: p.peak(),
            max_in_flight: a.pipeline,
        },
        None => Mode::Closed {
            pipeline: a.pipeline,
        },
    };
    let duration = plan.as_ref().map_or(a.duration, |p| p.duration());
    let segment = segment_of(a)?;
    let (connections, plan, mode) = match segment {
        None => (a.connections, plan, mode),
        Some(seg) => {
            let share = seg.rate_share(a.connections);
            let connections = seg.connections(a.connections);
            if connections == 0 {
                bail!(
                    "segment {seg} gets none of the {} connections: use more connections or fewer segments",
                    a.connections
                );
            }
            let mode = match mode {
                Mode::Open {
                    rate,
                    max_in_flight,
                } => Mode::Open {
                    rate: rate * share,
                    max_in_flight,
                },
                m => m,
            };
            (connections, plan.map(|p| p.scaled(share)), mode)
        }
    };
    Ok(Config {
        target: addr,
        threads: a.threads.min(connections),
        connections,
        mode,
        workload,
        duration,
        warmup: a.warmup,
        ramp_up: a.ramp_up,
        timeout: a.timeout,
        connect_timeout: a.connect_timeout,
        cores: a.cores.clone(),
        interval: a.interval,
        tls,
        reconnect_every: a.reconnect_every,
        slos: a.slos.clone(),
        plan,
        conn_rate: a.conn_rate,
        metrics: a.metrics,
        arrivals: match a.arrivals {
            ArrivalsArg::Uniform => Arrivals::Uniform,
            ArrivalsArg::Poisson => Arrivals::Poisson,
        },
    })
}

/// `--segment i/N`, or `--segments N` with the index from JOB_COMPLETION_INDEX.
pub(crate) fn segment_of(a: &RunArgs) -> anyhow::Result<Option<Segment>> {
    if let Some(s) = a.segment {
        return Ok(Some(s));
    }
    let Some(count) = a.segments else {
        return Ok(None);
    };
    let index = std::env::var("JOB_COMPLETION_INDEX")
        .context("--segments needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job), or use --segment INDEX/COUNT")?;
    let index: usize = index
        .trim()
        .parse()
        .with_context(|| format!("JOB_COMPLETION_INDEX={index:?} is not an index"))?;
    Ok(Some(
        Segment::new(index, count).map_err(|e| anyhow::anyhow!(e))?,
    ))
}

/// Sleeps until `--start-at`; a time already past (by more than a second) is an error.
pub(crate) fn wait_for_start(a: &RunArgs) -> anyhow::Result<()> {
    let Some(at) = &a.start_at else {
        return Ok(());
    };
    let when = humantime::parse_rfc3339_weak(at).with_context(|| {
        format!("--start-at {at:?} is not an RFC 3339 time (2026-11-24T10:00:00Z)")
    })?;
    let now = std::time::SystemTime::now();
    match when.duration_since(now) {
        Ok(wait) => {
            if wait > Duration::from_secs(24 * 3600) {
                bail!("--start-at {at} is more than a day away");
            }
            eprintln!(
                "waiting {} for --start-at {at}",
                humantime::format_duration(Duration::from_secs(wait.as_secs()))
            );
            std::thread::sleep(wait);
            Ok(())
        }
        Err(e) if e.duration() <= Duration::from_secs(1) => Ok(()),
        Err(e) => bail!(
            "--start-at {at} was {} ago: the segments would not start together",
            humantime::format_duration(Duration::from_secs(e.duration().as_secs()))
        ),
    }
}

/// The TLS settings `--tls`, `--tls-ca`, `--insecure`, `--sni`, `--alpn` ask for.
fn tls_target(a: &RunArgs, hostport: &str, https: bool) -> anyhow::Result<TlsTarget> {
    let host = match hostport.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => hostport,
    };
    let server_name = a.sni.clone().unwrap_or_else(|| host.to_string());
    let alpn = if a.alpn.is_empty() && https {
        vec!["http/1.1".to_string()]
    } else {
        a.alpn.clone()
    };
    let mut b = TlsClientConfig::builder().alpn(&alpn);
    b = match (&a.tls_ca, a.insecure) {
        (_, true) => b.insecure_skip_verify(),
        (Some(ca), false) => b.ca_file(ca)?,
        (None, false) => b.system_roots()?,
    };
    let config = b.build()?;
    // Checked now, so a bad name is an error before any connection.
    TlsClientConfig::check_server_name(&server_name)
        .with_context(|| format!("--sni / host {server_name:?}"))?;
    Ok(TlsTarget {
        config,
        server_name,
    })
}
