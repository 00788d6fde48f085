//! Command-line pieces shared by the load generator and the tuner: what
//! to send (`WorkloadArgs`, flattened into both CLIs with clap).

use crate::{LoadError, ResponseFrame, Workload};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// The workloads the load generator speaks.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Echo: a pattern of `--size` bytes, checked on return.
    Echo,
    /// Line: `--size` bytes and a newline, a line back.
    Line,
    /// HTTP/1.1 keep-alive requests.
    Http,
    /// Redis (RESP) commands.
    Resp,
    /// WebSocket binary messages of `--size` bytes, echoed back (the
    /// default for a ws:// or wss:// target).
    Websocket,
    /// A request from a file, responses framed by a delimiter or a length.
    Custom,
}

/// `--workload` and its options.
#[derive(Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// Workload (default: echo, or http for an http:// target).
    #[arg(short, long, value_enum)]
    pub workload: Option<WorkloadKind>,
    /// Message size in bytes (echo, line).
    #[arg(short, long, default_value_t = 64)]
    pub size: usize,
    /// HTTP header to add, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Line workload: send this line (a template: `{{NAME}}` is a --var)
    /// instead of --size bytes of a pattern; any one-line reply is a
    /// success. Implies -w line.
    #[arg(long, value_name = "TEXT")]
    pub line: Option<String>,
    /// RESP command, e.g. "SET k v" (repeatable; sent in turn). Default PING.
    #[arg(long = "command")]
    pub commands: Vec<String>,
    /// Custom workload: file whose bytes are one request.
    #[arg(long)]
    pub payload: Option<PathBuf>,
    /// Custom workload: responses end with this (escapes \r \n \t \\ allowed).
    #[arg(long)]
    pub response_delimiter: Option<String>,
    /// Custom workload: every response is this many bytes.
    #[arg(long)]
    pub response_length: Option<usize>,
}

fn bad(s: String) -> LoadError {
    LoadError::Config(s)
}

impl WorkloadArgs {
    /// The workload asked for; `url` (an http:// target) makes HTTP the
    /// default. `host`, `path`, `method` and `body` are HTTP's.
    pub fn build(
        &self,
        url: bool,
        host: &str,
        path: &str,
        method: &str,
        body: Option<&Path>,
    ) -> Result<Workload, LoadError> {
        let path = path.to_string();
        let kind = self.workload.unwrap_or(if url {
            WorkloadKind::Http
        } else if self.line.is_some() {
            WorkloadKind::Line
        } else {
            WorkloadKind::Echo
        });
        if self.line.is_some() && kind != WorkloadKind::Line {
            return Err(bad("--line is for the line workload".into()));
        }
        Ok(match kind {
            WorkloadKind::Echo => Workload::Echo { size: self.size },
            WorkloadKind::Line => Workload::Line {
                size: self.size,
                text: self.line.clone(),
            },
            WorkloadKind::Websocket => Workload::WebSocket {
                path,
                host: host.to_string(),
                size: self.size,
            },
            WorkloadKind::Http => {
                let mut headers = Vec::new();
                for h in &self.headers {
                    let (k, v) = h
                        .split_once(':')
                        .ok_or_else(|| bad(format!("header {h:?} is not \"Name: value\"")))?;
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
                let body = match body {
                    Some(f) => std::fs::read(f).map_err(|e| {
                        bad(format!("cannot read the body file {}: {e}", f.display()))
                    })?,
                    None => Vec::new(),
                };
                Workload::Http {
                    path,
                    host: host.to_string(),
                    headers,
                    method: method.to_string(),
                    body,
                }
            }
            WorkloadKind::Resp => {
                let cmds = if self.commands.is_empty() {
                    vec!["PING".to_string()]
                } else {
                    self.commands.clone()
                };
                Workload::Resp {
                    commands: cmds
                        .iter()
                        .map(|c| c.split_whitespace().map(String::from).collect())
                        .collect(),
                }
            }
            WorkloadKind::Custom => {
                let file = self
                    .payload
                    .as_ref()
                    .ok_or_else(|| bad("the custom workload needs --payload FILE".into()))?;
                let payload = std::fs::read(file)
                    .map_err(|e| bad(format!("cannot read payload {}: {e}", file.display())))?;
                let response = match (&self.response_delimiter, self.response_length) {
                    (Some(d), None) => ResponseFrame::Delimiter(unescape(d)?),
                    (None, Some(n)) => ResponseFrame::Length(n),
                    _ => return Err(bad("the custom workload needs exactly one of --response-delimiter or --response-length".into())),
                };
                Workload::Custom { payload, response }
            }
        })
    }
}

/// Turns the escapes `\r`, `\n`, `\t` and `\\` of a command-line string into bytes.
pub fn unescape(s: &str) -> Result<Vec<u8>, LoadError> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            other => {
                return Err(bad(format!(
                    "unknown escape \\{} in {s:?}",
                    other.map(String::from).unwrap_or_default()
                )))
            }
        }
    }
    Ok(out)
}

/// An error and its causes on one line for a CLI, each cause once: a
/// message that already ends with its cause's text (thiserror's `{0}`
/// beside `#[source]`) does not repeat it.
///
/// ```
/// let msgs = ["cannot listen on :80: denied", "denied", "os error 13"];
/// let line = shardloop_loadgen::cli::one_line(msgs.iter().map(|s| s.to_string()));
/// assert_eq!(line, "cannot listen on :80: denied: os error 13");
/// ```
pub fn one_line(messages: impl Iterator<Item = String>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for m in messages {
        if parts.last().is_some_and(|p| p.ends_with(&m)) {
            continue;
        }
        parts.push(m);
    }
    parts.join(": ")
}
