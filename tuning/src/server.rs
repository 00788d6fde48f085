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
                    other => Err(format!(
                        "unknown knob {other:?} (known: read-buffer, events, pin, policy)"
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
        }
    }
}

/// How to run the server.
#[derive(Debug, Clone)]
pub enum ServerSpec {
    /// shardloop's echo protocol, inside the tuner.
    BuiltinEcho,
    /// A shell command; `{shards}`, `{port}`, `{cores}` (comma list, empty
    /// when unpinned), `{read_buffer}`, `{events}`, `{policy}` are substituted.
    Command(String),
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
}

impl Running {
    /// Address to load.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
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
                Some(c) => b.pin_to_cores(c.to_vec()),
                None => b.pin(false),
            };
            match knob {
                Some(Knob::ReadBuffer(n)) => b = b.read_buffer_size(*n),
                Some(Knob::EventsPerPoll(n)) => b = b.events_per_poll(*n),
                Some(Knob::Pin(false)) => b = b.pin(false),
                Some(Knob::Policy(p)) if p == "lc" => b = b.balancing(LeastConnections),
                Some(Knob::Policy(_)) => b = b.balancing(RoundRobin::default()),
                Some(Knob::Pin(true)) | None => {}
            }
            let h = b
                .listen("127.0.0.1:0", |_| |_| Echo)
                .build()
                .map_err(|e| TuneError::Server(e.to_string()))?
                .start()
                .map_err(|e| TuneError::Server(e.to_string()))?;
            Ok(Running {
                addr: h.tcp_addr(0),
                builtin: Some(h),
                child: None,
            })
        }
        ServerSpec::Command(template) => {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| TuneError::Server(format!("cannot find a free port: {e}")))?
                .port();
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
            let cmd = template
                .replace("{shards}", &shards.to_string())
                .replace("{port}", &port.to_string())
                .replace("{cores}", &cores_s)
                .replace("{read_buffer}", &rb)
                .replace("{events}", &ev)
                .replace("{policy}", &pol);
            let child = Command::new("sh")
                .arg("-c")
                .arg(format!("exec {cmd}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| TuneError::Server(format!("cannot run {cmd:?}: {e}")))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut running = Running {
                addr,
                builtin: None,
                child: Some(child),
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Ok(running);
                }
                if let Some(c) = running.child.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        return Err(TuneError::Server(format!(
                            "server command {cmd:?} exited with {status}"
                        )));
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
