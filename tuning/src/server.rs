//! The server being tuned: the built-in echo server (in this process), or an
//! external command started from a template for each configuration.

use crate::TuneError;
use shardloop::{Conn, Handle, LeastConnections, Protocol, RoundRobin, Server};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A value of a secondary knob that the sweep varies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Knob {
    /// Shard read-buffer size in bytes.
    ReadBuffer(usize),
    /// Events taken per poll.
    EventsPerPoll(usize),
    /// Shards pinned to cores or not.
    Pin(bool),
    /// Acceptor balancing: "rr" or "lc".
    Policy(String),
    /// The I/O backend: "epoll" or "io-uring".
    Backend(String),
}

impl Knob {
    /// Parses `name=v1,v2,...` into the knob values.
    pub fn parse_list(spec: &str) -> Result<Vec<Knob>, String> {
        let (name, values) = spec
            .split_once('=')
            .ok_or_else(|| format!("knob {spec:?} is not NAME=V1,V2"))?;
        values
            .split(',')
            .map(|v| {
                let v = v.trim();
                let num = || {
                    v.parse::<usize>()
                        .map_err(|_| format!("knob {name}: {v:?} is not a whole number"))
                };
                match name.trim() {
                    "read-buffer" => Ok(Knob::ReadBuffer(num()?)),
                    "events" => Ok(Knob::EventsPerPoll(num()?)),
                    "pin" => match v {
                        "on" | "true" => Ok(Knob::Pin(true)),
                        "off" | "false" => Ok(Knob::Pin(false)),
                        _ => Err(format!("knob pin: {v:?} is not on/off")),
                    },
                    "policy" => match v {
                        "rr" | "lc" => Ok(Knob::Policy(v.to_string())),
                        _ => Err(format!("knob policy: {v:?} is not rr or lc")),
                    },
                    "backend" => v
                        .parse::<shardloop::Backend>()
                        .map(|b| Knob::Backend(b.name().to_string()))
                        .map_err(|e| format!("knob backend: {e}")),
                    other => Err(format!(
                        "unknown knob {other:?} (known: read-buffer, events, pin, policy, backend)"
                    )),
                }
            })
            .collect()
    }
}

impl std::fmt::Display for Knob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Knob::ReadBuffer(n) => write!(f, "read-buffer={n}"),
            Knob::EventsPerPoll(n) => write!(f, "events={n}"),
            Knob::Pin(b) => write!(f, "pin={}", if *b { "on" } else { "off" }),
            Knob::Policy(p) => write!(f, "policy={p}"),
            Knob::Backend(b) => write!(f, "backend={b}"),
        }
    }
}

/// How to run the server.
#[derive(Debug, Clone)]
pub enum ServerSpec {
    /// shardloop's echo protocol, inside the tuner.
    BuiltinEcho,
    /// A shell command on this machine, on a free port; `{shards}`,
    /// `{port}`, `{host}` (127.0.0.1), `{cores}` (comma list, empty when
    /// unpinned), `{read_buffer}`, `{events}`, `{policy}`, `{backend}` are
    /// substituted.
    Command(String),
    /// A server at a fixed address, usually on another machine.
    Remote(RemoteSpec),
}

/// A server the tuner reaches at `target`, started (if at all) by a
/// command that may run it elsewhere, e.g. `ssh prod1 'server --shards
/// {shards} --port {port}'`.
#[derive(Debug, Clone)]
pub struct RemoteSpec {
    /// `HOST:PORT`; `{host}` and `{port}` in the commands are its parts.
    pub target: String,
    /// Starts the server for each configuration (the same placeholders as
    /// [`ServerSpec::Command`]); `None`: a server is already running there.
    pub start: Option<String>,
    /// Stops it after each configuration (e.g. `ssh prod1 pkill -INT -f
    /// server`); without it the start command's process is interrupted,
    /// which stops a remote server only if ssh forwards it (`ssh -tt`).
    pub stop: Option<String>,
    /// The server machine's cores for `{cores}` (the first N for N shards);
    /// empty: `{cores}` is empty (unpinned).
    pub cores: Vec<usize>,
}

impl RemoteSpec {
    /// The host and port parts of `target`.
    pub fn host_port(&self) -> Result<(String, u16), TuneError> {
        let (h, p) = self.target.rsplit_once(':').ok_or_else(|| {
            TuneError::Config(format!("--target {:?} is not HOST:PORT", self.target))
        })?;
        let port = p
            .parse()
            .map_err(|_| TuneError::Config(format!("--target {:?}: bad port", self.target)))?;
        Ok((
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
        ))
    }

    fn resolve(&self) -> Result<SocketAddr, TuneError> {
        use std::net::ToSocketAddrs;
        self.target
            .to_socket_addrs()
            .map_err(|e| TuneError::Server(format!("cannot resolve {}: {e}", self.target)))?
            .next()
            .ok_or_else(|| TuneError::Server(format!("{} resolved to no address", self.target)))
    }

    /// Whether the server runs on this machine (its pinning then matters
    /// to the load generator's).
    pub fn is_local(&self) -> bool {
        self.resolve().is_ok_and(|a| a.ip().is_loopback())
    }
}

/// `template` with the configuration's values in place of its placeholders.
pub fn substitute(
    template: &str,
    shards: usize,
    host: &str,
    port: u16,
    cores: Option<&[usize]>,
    knob: Option<&Knob>,
) -> String {
    let cores_s = cores
        .map(|c| {
            c.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let (rb, ev, pol) = match knob {
        Some(Knob::ReadBuffer(n)) => (n.to_string(), String::new(), String::new()),
        Some(Knob::EventsPerPoll(n)) => (String::new(), n.to_string(), String::new()),
        Some(Knob::Policy(p)) => (String::new(), String::new(), p.clone()),
        _ => Default::default(),
    };
    let backend = match knob {
        Some(Knob::Backend(b)) => b.clone(),
        _ => "epoll".to_string(),
    };
    template
        .replace("{shards}", &shards.to_string())
        .replace("{port}", &port.to_string())
        .replace("{host}", host)
        .replace("{cores}", &cores_s)
        .replace("{read_buffer}", &rb)
        .replace("{events}", &ev)
        .replace("{policy}", &pol)
        .replace("{backend}", &backend)
}

struct Echo;
impl Protocol for Echo {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
}

/// A running server under test; stopped on drop.
pub struct Running {
    pub(crate) addr: SocketAddr,
    builtin: Option<Handle>,
    child: Option<Child>,
    /// A remote server's stop command, run on drop; then the port must close.
    stop: Option<String>,
    /// Wait for the port to stop accepting after stopping (remote servers:
    /// the next configuration must not meet this one).
    await_close: bool,
}

impl Running {
    /// Address to load.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_child();
        if let Some(stop) = self.stop.take() {
            match Command::new("sh").arg("-c").arg(&stop).status() {
                Ok(s) if s.success() => {}
                Ok(s) => tracing::warn!(%stop, %s, "server stop command failed"),
                Err(e) => tracing::warn!(%stop, %e, "cannot run the server stop command"),
            }
        }
        if self.await_close {
            let deadline = Instant::now() + Duration::from_secs(15);
            while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                if Instant::now() > deadline {
                    tracing::warn!(addr = %self.addr, "the server still accepts 15 s after it was stopped");
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Running {
    fn stop_child(&mut self) {
        if let Some(h) = self.builtin.take() {
            h.stop_within(Duration::from_secs(1));
            h.wait();
        }
        if let Some(mut c) = self.child.take() {
            // Ask nicely (SIGINT: graceful stop), then insist.
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts the server with `shards` shards pinned to `cores` (if any).
pub fn start(
    spec: &ServerSpec,
    shards: usize,
    cores: Option<&[usize]>,
    knob: Option<&Knob>,
) -> Result<Running, TuneError> {
    match spec {
        ServerSpec::BuiltinEcho => {
            let mut b = Server::builder().shards(shards);
            b = match cores {
                Some(c) => b.pinning(shardloop::Pinning::Cores(c.to_vec())),
                None => b.pinning(shardloop::Pinning::Off),
            };
            let mut loop_options = shardloop::LoopOptions::default();
            match knob {
                Some(Knob::ReadBuffer(n)) => loop_options.read_buffer_size = *n,
                Some(Knob::EventsPerPoll(n)) => loop_options.events_per_poll = *n,
                Some(Knob::Pin(false)) => b = b.pinning(shardloop::Pinning::Off),
                Some(Knob::Policy(p)) if p == "lc" => b = b.balancing(LeastConnections),
                Some(Knob::Policy(_)) => b = b.balancing(RoundRobin::default()),
                Some(Knob::Backend(name)) => {
                    b = b.backend(name.parse().unwrap_or(shardloop::Backend::Epoll))
                }
                Some(Knob::Pin(true)) | None => {}
            }
            let h = b
                .loop_options(loop_options)
                .listen("127.0.0.1:0", |_| |_| Echo)
                .build()
                .map_err(|e| TuneError::Server(e.to_string()))?
                .start()
                .map_err(|e| TuneError::Server(e.to_string()))?;
            Ok(Running {
                addr: h.tcp_addr(0),
                builtin: Some(h),
                child: None,
                stop: None,
                await_close: false,
            })
        }
        ServerSpec::Command(template) => {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| TuneError::Server(format!("cannot find a free port: {e}")))?
                .port();
            let cmd = substitute(template, shards, "127.0.0.1", port, cores, knob);
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            launch(&cmd, addr, None, false)
        }
        ServerSpec::Remote(remote) => {
            let (host, port) = remote.host_port()?;
            let addr = remote.resolve()?;
            // The tuner's own split when the server is on this machine, else
            // the server machine's cores as given.
            let cores: Option<Vec<usize>> = cores.map(<[usize]>::to_vec).or_else(|| {
                (!remote.cores.is_empty())
                    .then(|| remote.cores.iter().copied().take(shards).collect())
            });
            match &remote.start {
                None => launch_none(addr),
                Some(template) => {
                    if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                        return Err(TuneError::Server(format!(
                            "{addr} already accepts connections before the server command ran: stop what runs there (or leave out --server-cmd to measure it as it is)"
                        )));
                    }
                    let cmd = substitute(template, shards, &host, port, cores.as_deref(), knob);
                    let stop = remote
                        .stop
                        .as_ref()
                        .map(|t| substitute(t, shards, &host, port, cores.as_deref(), knob));
                    launch(&cmd, addr, stop, true)
                }
            }
        }
    }
}

/// A server already running at `addr`: checked, never stopped.
fn launch_none(addr: SocketAddr) -> Result<Running, TuneError> {
    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| TuneError::Server(format!("nothing accepts connections at {addr}: {e}")))?;
    Ok(Running {
        addr,
        builtin: None,
        child: None,
        stop: None,
        await_close: false,
    })
}

/// Runs `cmd` and waits until `addr` accepts connections.
fn launch(
    cmd: &str,
    addr: SocketAddr,
    stop: Option<String>,
    await_close: bool,
) -> Result<Running, TuneError> {
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {cmd}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| TuneError::Server(format!("cannot run {cmd:?}: {e}")))?;
    let mut running = Running {
        addr,
        builtin: None,
        child: Some(child),
        stop,
        await_close,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(running);
        }
        if let Some(c) = running.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                if running.stop.is_none() {
                    return Err(TuneError::Server(format!(
                        "server command {cmd:?} exited with {status}"
                    )));
                }
                // A remote start command may return once the server is
                // up elsewhere (ssh host 'server --daemon'): keep waiting.
                running.child = None;
            }
        }
        if Instant::now() > deadline {
            return Err(TuneError::Server(format!(
                "server command {cmd:?} did not accept connections on {addr} within 15 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knob_lists_parse_and_reject_bad_values() {
        assert_eq!(
            Knob::parse_list("read-buffer=4096,65536").unwrap(),
            vec![Knob::ReadBuffer(4096), Knob::ReadBuffer(65536)]
        );
        assert_eq!(
            Knob::parse_list("pin=on,off").unwrap(),
            vec![Knob::Pin(true), Knob::Pin(false)]
        );
        assert!(Knob::parse_list("pin=maybe")
            .unwrap_err()
            .contains("on/off"));
        assert!(Knob::parse_list("colour=red")
            .unwrap_err()
            .contains("unknown knob"));
        assert!(Knob::parse_list("events").is_err());
        assert_eq!(
            Knob::parse_list("backend=epoll,io_uring").unwrap(),
            vec![
                Knob::Backend("epoll".into()),
                Knob::Backend("io-uring".into())
            ]
        );
        assert!(Knob::parse_list("backend=kqueue")
            .unwrap_err()
            .contains("epoll or io-uring"));
        assert_eq!(
            substitute(
                "srv --reactor-backend {backend}",
                1,
                "h",
                1,
                None,
                Some(&Knob::Backend("io-uring".into()))
            ),
            "srv --reactor-backend io-uring"
        );
    }

    #[test]
    fn builtin_server_echoes_on_the_io_uring_backend_too() {
        use std::io::{Read, Write};
        let knob = Knob::Backend("io-uring".into());
        let r = start(&ServerSpec::BuiltinEcho, 1, None, Some(&knob)).unwrap();
        let mut s = TcpStream::connect(r.addr()).unwrap();
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
    }

    #[test]
    fn builtin_server_echoes() {
        use std::io::{Read, Write};
        let r = start(&ServerSpec::BuiltinEcho, 1, None, None).unwrap();
        let mut s = TcpStream::connect(r.addr()).unwrap();
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
    }
}
