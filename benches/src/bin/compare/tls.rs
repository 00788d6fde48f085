//! The TLS side of the comparison (a throw-away PKI, the load generator's
//! TLS settings) and nginx as a peer: Debian's package, one process with
//! `master_process off` so its CPU time is one PID's, pinned to the
//! servers' core, `return 200 "Hello, World!"`; with TLS the same
//! certificate and key, TLS 1.3 only, so the suite and key exchange match
//! (the client offers the same lists to both).

use anyhow::{bail, Context};
use shardloop_devtools::pki::{PkiFiles, TestPki};
use shardloop_devtools::Spawned;
use shardloop_loadgen::TlsTarget;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Certificate files shared by every TLS server of the run.
pub(crate) fn pki() -> anyhow::Result<PkiFiles> {
    let dir = std::env::temp_dir().join(format!("shardloop-compare-tls-{}", std::process::id()));
    Ok(TestPki::new().write(&dir)?)
}

/// What the load generator needs to speak TLS to the servers.
pub(crate) fn target(files: &PkiFiles) -> anyhow::Result<TlsTarget> {
    let config = shardloop::tls::TlsClientConfig::builder()
        .ca_file(&files.ca)?
        .alpn(["http/1.1"])
        .build()?;
    Ok(TlsTarget {
        config,
        server_name: "localhost".into(),
    })
}

/// The arguments that make an example serve TLS.
pub(crate) fn example_args(files: &PkiFiles) -> Vec<String> {
    vec![
        "--tls-cert".into(),
        files.cert.display().to_string(),
        "--tls-key".into(),
        files.key.display().to_string(),
        "--tls-alpn".into(),
        "http/1.1".into(),
    ]
}

fn nginx_conf(dir: &Path, port: u16, files: Option<&PkiFiles>) -> String {
    let tls = match files {
        Some(f) => format!(
            "listen 127.0.0.1:{port} ssl;\n        ssl_certificate {};\n        ssl_certificate_key {};\n        ssl_protocols TLSv1.3;\n        ssl_session_cache off;",
            f.cert.display(),
            f.key.display()
        ),
        None => format!("listen 127.0.0.1:{port};"),
    };
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    server {{
        {tls}
        location / {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}
        location = /json {{
            default_type application/json;
            return 200 '{{"message":"Hello, World!"}}';
        }}
    }}
}}
"#,
        dir = dir.display(),
    )
}

/// Starts nginx on core 0 (serving TLS with `files`, else plaintext) and
/// waits until it accepts connections.
pub(crate) fn start_nginx(files: Option<&PkiFiles>) -> anyhow::Result<Spawned> {
    let nginx = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("nginx is not installed (apt-get install -y nginx)")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!(
        "shardloop-compare-nginx-{}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&dir, port, files))?;
    let child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(&nginx)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start nginx")?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut srv = Spawned {
        child,
        addr,
        banner: String::new(),
        graceful_stop: Some(Duration::from_secs(2)),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline || matches!(srv.child.try_wait(), Ok(Some(_))) {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            bail!("nginx did not start: {log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(srv)
}
