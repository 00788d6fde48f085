//! Under systemd: socket activation (a listener passed as descriptor 3,
//! through `systemd-socket-activate`) and readiness notification.
use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn an_example_serves_on_a_socket_systemd_passed_and_says_it_is_ready() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = std::env::temp_dir().join(format!("shardloop-notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let notify = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // systemd-socket-activate passes the program only the variables named with -E.
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{port}")])
        .arg(format!("--setenv=NOTIFY_SOCKET={}", path.display()))
        .arg("--setenv=RUST_LOG=error")
        .arg(common::example_bin("echo"))
        // Its own address is ignored: systemd's socket is used instead.
        .args(["--port", "0", "--shards", "1", "--no-pin"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate is needed by this test (Debian package systemd)");
    // systemd-socket-activate starts the program at the first connection.
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    common::wait_for("the socket is listening", || {
        std::net::TcpStream::connect(addr).map(drop).is_ok()
    });
    let mut s = common::connect(addr);
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = BufReader::new(out);
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
        // Keep reading so the example never writes into a closed pipe.
        let _ = std::io::copy(&mut out, &mut std::io::sink());
    });
    let line = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            panic!("the example never started");
        }
    };
    let got = shardloop_devtools::parse_addr(&line);
    let mut buf = [0u8; 64];
    let ready = notify.recv(&mut buf).map(|n| buf[..n].to_vec());
    s.write_all(b"activated").unwrap();
    let mut b = [0u8; 9];
    let echoed = s.read_exact(&mut b).map(|_| b);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        got,
        Some(addr),
        "the example took the passed socket: {line:?}"
    );
    assert_eq!(ready.unwrap(), b"READY=1");
    assert_eq!(&echoed.unwrap(), b"activated");
}

/// Runs the echo example as systemd would, with descriptor 3 made by
/// `setup` (Python code given `s`, a socket), and returns its exit and stderr.
fn activate_with(setup: &str) -> (std::process::ExitStatus, String) {
    let script = format!(
        "import os, socket, sys\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         {setup}\n\
         if s.fileno() != 3: os.dup2(s.fileno(), 3)\n\
         os.set_inheritable(3, True)\n\
         os.environ['LISTEN_FDS'] = '1'\n\
         os.environ['LISTEN_PID'] = str(os.getpid())\n\
         os.environ['RUST_LOG'] = 'error'\n\
         os.execv(sys.argv[1], sys.argv[1:])\n"
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(common::example_bin("echo"))
        .args(["--port", "0", "--shards", "1", "--no-pin"])
        .stdin(Stdio::null())
        .output()
        .expect("python3 is needed by this test");
    (out.status, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn an_inherited_socket_that_is_not_listening_is_refused_at_start() {
    let (status, stderr) = activate_with("s.bind(('127.0.0.1', 0))");
    assert!(!status.success(), "refused, not serving: {stderr}");
    assert!(
        stderr.contains("passed socket 0 is not listening"),
        "{stderr}"
    );
    let (status, stderr) = activate_with(
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))",
    );
    assert!(!status.success(), "a datagram socket is refused: {stderr}");
}
