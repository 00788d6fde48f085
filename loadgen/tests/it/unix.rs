//! Unix-domain socket targets: `unix:PATH` for any workload, and HTTP over
//! a socket with a URL and `--unix-socket PATH` (curl's), against servers
//! of this process listening on sockets.

use crate::common::{load, Echo};
use shardloop::{Conn, Handle, Protocol, Server};
use shardloop_loadgen::{run, Config};
use std::path::PathBuf;
use std::time::Duration;

fn socket(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sl-load-{tag}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn serve<P: Protocol>(path: &std::path::Path, make: fn() -> P) -> Handle {
    Server::builder()
        .shards(1)
        .pinning(shardloop::Pinning::Off)
        .listen(format!("unix:{}", path.display()), move |_| move |_| make())
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// Answers every request head with 200 and "ok".
struct Http(Vec<u8>);
impl Protocol for Http {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.0.extend_from_slice(data);
        while let Some(end) = self.0.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&self.0[..end]).into_owned();
            self.0.drain(..end + 4);
            let ok = head.starts_with("GET /items HTTP/1.1") && head.contains("Host: localhost");
            let status = if ok { "200 OK" } else { "400 Bad Request" };
            conn.write(format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok").as_bytes());
        }
    }
}

#[test]
fn echo_and_http_over_unix_sockets() {
    let path = socket("echo");
    let h = serve(&path, || Echo);
    let mut cfg = Config::unix(&path);
    cfg.connections = 2;
    cfg.duration = Duration::from_millis(400);
    let r = run(&cfg, |_| {}).unwrap();
    assert!(
        r.responses_ok > 100 && r.errors.total() == 0,
        "{}",
        r.summary()
    );
    assert!(r.target.contains(path.to_str().unwrap()), "{}", r.target);
    // The same from the command line.
    let socket_target = format!("unix:{}", path.display());
    let (code, text) = load([socket_target.as_str(), "-d", "300ms", "-c", "2", "-t", "1"]);
    assert!(code == 0, "{text}");
    h.shutdown();

    let web = socket("http");
    let h = serve(&web, || Http(Vec::new()));
    let json = web.with_extension("json");
    let (code, text) = load([
        "http://localhost/items",
        "--unix-socket",
        web.to_str().unwrap(),
        "-d",
        "300ms",
        "-c",
        "2",
        "-t",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(code == 0, "{text}");
    let r: shardloop_loadgen::Report =
        serde_json::from_slice(&std::fs::read(web.with_extension("json")).unwrap()).unwrap();
    assert!(
        r.responses_ok > 0 && r.http_status.keys().all(|c| *c == 200),
        "{text}"
    );
    h.shutdown();
    for p in [path, web.clone(), web.with_extension("json")] {
        let _ = std::fs::remove_file(p);
    }
}
