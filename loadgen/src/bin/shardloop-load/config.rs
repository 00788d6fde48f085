//! From the command line to a `Config`: the workload, the target (and TLS),
//! the segment's share, the synchronised start.

use crate::args::{ArrivalsArg, RunArgs};
use anyhow::{bail, Context};
use shardloop::tls::TlsClientConfig;
use shardloop_loadgen::cli::WorkloadKind;
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

/// What a target names.
struct Target {
    /// Where to connect.
    hostport: String,
    /// The request target (path and query).
    path: String,
    /// An http(s):// or ws(s):// URL.
    url: bool,
    /// https:// or wss://.
    tls: bool,
    /// ws:// or wss://.
    websocket: bool,
}

/// HOST:PORT, or a URL (parsed by the `url` crate: IPv6 literals, default
/// ports). The request target (path and query) is taken as written, so
/// `{{var}}` templates in it stay whole (a URL parser would escape them).
fn split_target(target: &str) -> anyhow::Result<Target> {
    if !target.contains("://") {
        return Ok(Target {
            hostport: target.to_string(),
            path: "/".to_string(),
            url: false,
            tls: false,
            websocket: false,
        });
    }
    let url = url::Url::parse(target).with_context(|| format!("malformed URL {target:?}"))?;
    let (https, websocket) = match url.scheme() {
        "http" => (false, false),
        "https" => (true, false),
        "ws" => (false, true),
        "wss" => (true, true),
        _ => bail!("unsupported URL scheme in {target:?} (http://, https://, ws:// or wss://)"),
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .with_context(|| format!("no host in {target:?}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        bail!("user information in {target:?} is not supported");
    }
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let hostport = format!("{host}:{port}");
    // What follows the authority, as written (without a fragment).
    let after_scheme = &target[target.find("://").map_or(0, |i| i + 3)..];
    let raw = after_scheme
        .find(['/', '?'])
        .map_or("", |i| &after_scheme[i..]);
    let raw = raw.split('#').next().unwrap_or("");
    let path = match raw {
        "" => "/".to_string(),
        r if r.starts_with('?') => format!("/{r}"),
        r => r.to_string(),
    };
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        bail!("the URL's path {path:?} has spaces or control characters (escape them: %20)");
    }
    Ok(Target {
        hostport,
        path,
        url: true,
        tls: https,
        websocket,
    })
}

pub(crate) fn build_config(a: &RunArgs) -> anyhow::Result<Config> {
    let given = a.target.as_deref().expect("clap requires the target");
    // `unix:PATH`: a Unix-domain socket (redis-benchmark's -s); a URL with
    // --unix-socket PATH: HTTP over one (curl's).
    let (target, unix) = match (given.strip_prefix("unix:"), &a.unix_socket) {
        (Some(_), Some(_)) => bail!("a unix: target and --unix-socket: give one"),
        (Some(""), None) => bail!("unix: needs a socket path"),
        (Some(path), None) => ("localhost:0", Some(std::path::PathBuf::from(path))),
        (None, Some(path)) if !given.contains("://") => {
            bail!("--unix-socket goes with a URL (http://localhost/path); for other workloads use unix:PATH")
        }
        (None, socket) => (given, socket.clone()),
    };
    let Target {
        hostport,
        path,
        url: is_url,
        tls: https,
        websocket,
    } = split_target(target)?;
    let tls = if a.tls || https {
        Some(tls_target(a, &hostport, https)?)
    } else {
        if a.tls_ca.is_some()
            || a.insecure
            || a.sni.is_some()
            || !a.alpn.is_empty()
            || a.tls_cert.is_some()
            || a.tls_resume
        {
            bail!("--tls-ca, --insecure, --sni, --alpn, --tls-cert and --tls-resume need --tls (or an https:// target)");
        }
        None
    };
    let addr = match unix {
        Some(path) => shardloop::Addr::Unix(Some(path)),
        None => shardloop::Addr::Tcp(resolve(&hostport)?),
    };
    let hostport = if given.starts_with("unix:") {
        "localhost".to_string()
    } else {
        hostport
    };
    let mut workload_args = a.workload.clone();
    if websocket && workload_args.workload.is_none() {
        workload_args.workload = Some(WorkloadKind::Websocket);
    }
    let workload = workload_args.build(is_url, &hostport, &path, &a.method, a.body.as_deref())?;
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
        think: a.think,
        http2: a.http2,
        sizes: a
            .sizes
            .as_deref()
            .map(|spec| shardloop_loadgen::template::Sizes::parse(spec, 1).map(std::sync::Arc::new))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        vars: std::sync::Arc::new(
            shardloop_loadgen::template::Vars::parse(&a.vars, &|path| {
                std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
            })
            .map_err(anyhow::Error::msg)?,
        ),
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

/// The TLS settings `--tls`, `--tls-ca`, `--insecure`, `--sni`, `--alpn`,
/// `--tls-cert` and `--tls-key` ask for.
fn tls_target(a: &RunArgs, hostport: &str, https: bool) -> anyhow::Result<TlsTarget> {
    let host = match hostport.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => hostport,
    };
    let server_name = a.sni.clone().unwrap_or_else(|| host.to_string());
    let alpn = if a.alpn.is_empty() && a.http2 {
        vec!["h2".to_string()]
    } else if a.alpn.is_empty() && https {
        vec!["http/1.1".to_string()]
    } else {
        a.alpn.clone()
    };
    let mut b = TlsClientConfig::builder()
        .alpn(&alpn)
        .session_resumption(a.tls_resume);
    b = match (&a.tls_ca, a.insecure) {
        (_, true) => b.insecure_skip_verify(),
        (Some(ca), false) => b.ca_file(ca)?,
        (None, false) => b.system_roots()?,
    };
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        b = b
            .client_cert_pem_files(cert, key)
            .context("--tls-cert / --tls-key")?;
    }
    let config = b.build()?;
    // Checked now, so a bad name is an error before any connection.
    TlsClientConfig::check_server_name(&server_name)
        .with_context(|| format!("--sni / host {server_name:?}"))?;
    Ok(TlsTarget {
        config,
        server_name,
    })
}

#[cfg(test)]
mod tests {
    use super::split_target;

    #[test]
    fn urls_with_ipv6_queries_and_default_ports() {
        let t = |s: &str| {
            let t = split_target(s).unwrap();
            assert!(!t.websocket);
            (t.hostport, t.path, t.url, t.tls)
        };
        assert_eq!(
            t("127.0.0.1:80"),
            ("127.0.0.1:80".into(), "/".into(), false, false)
        );
        assert_eq!(
            t("http://[::1]/"),
            ("[::1]:80".into(), "/".into(), true, false)
        );
        assert_eq!(
            t("http://h?q=1"),
            ("h:80".into(), "/?q=1".into(), true, false)
        );
        assert_eq!(
            t("https://h:8443/a/b?x=%20"),
            ("h:8443".into(), "/a/b?x=%20".into(), true, true)
        );
        assert_eq!(
            t("http://[::1]:8080/p"),
            ("[::1]:8080".into(), "/p".into(), true, false)
        );
        let ws = split_target("wss://[::1]/chat?room=1").unwrap();
        assert_eq!(
            (
                ws.hostport.as_str(),
                ws.path.as_str(),
                ws.url,
                ws.tls,
                ws.websocket
            ),
            ("[::1]:443", "/chat?room=1", true, true, true)
        );
        // Templates in the path stay as written.
        assert_eq!(
            t("http://h:8080/users/{{id}}?n={{n}}#frag"),
            ("h:8080".into(), "/users/{{id}}?n={{n}}".into(), true, false)
        );
        assert!(split_target("http://u:p@h/").is_err());
        assert!(split_target("ftp://h/").is_err());
        assert!(split_target("http://h/a b").is_err());
        let ws = split_target("ws://h:8080/ws").unwrap();
        assert_eq!(
            (ws.hostport.as_str(), ws.tls, ws.websocket),
            ("h:8080", false, true)
        );
        assert!(split_target("ftp://h/").is_err());
        assert!(split_target("http://u@h/").is_err());
    }
}
