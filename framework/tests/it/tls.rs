//! TLS on 127.0.0.1 with rustls clients: unchanged protocols over TLS,
//! what the handshake negotiated, ALPN, mTLS, hostile handshakes (garbage,
//! stalls, truncation), large transfers, close_notify, STARTTLS, outbound
//! TLS, certificate reload, endpoint strings.

use crate::common::*;
use rustls::pki_types::ServerName;
use shardloop::endpoint::{Connect, Listen};
use shardloop::framing::{FrameProtocol, Framed, FramedConn, LineDecoder};
use shardloop::tls::{TlsClientConfig, TlsServerConfig};
use shardloop::{CloseReason, Conn, Protocol, Settings, TlsFailure};
use shardloop_devtools::pki::TestPki;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(TestPki::new)
}

pub(crate) fn server_tls(alpn: &[&str]) -> TlsServerConfig {
    let p = pki();
    TlsServerConfig::from_pem(p.server_cert_pem.as_bytes(), p.server_key_pem.as_bytes())
        .unwrap()
        .alpn(alpn)
        .build()
        .unwrap()
}

pub(crate) fn client_tls(alpn: &[&str]) -> TlsClientConfig {
    TlsClientConfig::builder()
        .ca_pem(pki().ca_pem.as_bytes())
        .unwrap()
        .alpn(alpn)
        .build()
        .unwrap()
}

pub(crate) type Client = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

pub(crate) fn tls_connect(addr: SocketAddr, cfg: &TlsClientConfig) -> std::io::Result<Client> {
    let tcp = connect(addr);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg.rustls_config().clone(), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Writes what the handshake negotiated on one line, then echoes.
struct InfoEcho;
impl Protocol for InfoEcho {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let i = conn.tls_info().expect("made after the handshake");
        let line = format!(
            "alpn={} sni={} version={} suite={} certs={}\n",
            String::from_utf8_lossy(i.alpn.as_deref().unwrap_or(b"-")),
            i.server_name.as_deref().unwrap_or("-"),
            i.protocol_version,
            i.cipher_suite,
            i.peer_certificates.len()
        );
        conn.write(line.as_bytes());
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
}

fn read_line(s: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.last() != Some(&b'\n') {
        assert_eq!(s.read(&mut b).unwrap(), 1, "EOF inside a line: {line:?}");
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap()
}

fn info_server(tls: TlsServerConfig) -> (shardloop::Handle, SocketAddr) {
    started(builder(2).listen(Listen::from("127.0.0.1:0").tls(tls), |_| |_| InfoEcho))
}

#[test]
fn an_unchanged_protocol_runs_over_tls_and_sees_what_was_negotiated() {
    let (h, addr) = info_server(server_tls(&["h2", "http/1.1"]));
    let mut c = tls_connect(addr, &client_tls(&["http/1.1"])).unwrap();
    let line = read_line(&mut c);
    assert_eq!(
        line,
        "alpn=http/1.1 sni=localhost version=TLSv1.3 suite=TLS13_AES_256_GCM_SHA384 certs=0\n"
    );
    c.write_all(b"hello over TLS").unwrap();
    let mut got = [0u8; 14];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello over TLS");
    assert_eq!(h.stats().total().tls_handshakes, 1);
    h.shutdown();
}

#[test]
fn a_client_with_no_common_alpn_protocol_is_refused() {
    let (h, addr) = info_server(server_tls(&["h2"]));
    let err = tls_connect(addr, &client_tls(&["http/1.1"])).unwrap_err();
    assert!(err.to_string().contains("NoApplicationProtocol"), "{err}");
    wait_for("the failure counted", || {
        h.stats().total().tls_handshake_failures == 1
    });
    assert_eq!(h.stats().total().tls_handshakes, 0);
    h.shutdown();
}

#[test]
fn a_client_that_offers_no_alpn_is_accepted_without_a_protocol() {
    let (h, addr) = info_server(server_tls(&["h2", "http/1.1"]));
    let mut c = tls_connect(addr, &client_tls(&[])).unwrap();
    assert!(
        read_line(&mut c).starts_with("alpn=- "),
        "no ALPN negotiated"
    );
    assert_eq!(h.stats().total().tls_handshake_failures, 0);
    h.shutdown();
}

#[test]
fn mutual_tls_accepts_the_cas_clients_and_refuses_others() {
    let p = pki();
    let tls = TlsServerConfig::from_pem(p.server_cert_pem.as_bytes(), p.server_key_pem.as_bytes())
        .unwrap()
        .client_ca_pem(p.ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let (h, addr) = info_server(tls);
    let with_cert = |cert: &str, key: &str| {
        TlsClientConfig::builder()
            .ca_pem(p.ca_pem.as_bytes())
            .unwrap()
            .client_cert_pem(cert.as_bytes(), key.as_bytes())
            .unwrap()
            .build()
            .unwrap()
    };
    let mut ok = tls_connect(addr, &with_cert(&p.client_cert_pem, &p.client_key_pem)).unwrap();
    assert!(read_line(&mut ok).ends_with("certs=1\n"));

    // TLS 1.3: the client finishes first; the server's refusal arrives as
    // an alert on the first read.
    for cfg in [
        client_tls(&[]),
        with_cert(&p.stranger_cert_pem, &p.stranger_key_pem),
    ] {
        let refused = tls_connect(addr, &cfg).and_then(|mut c| {
            let mut b = [0u8; 1];
            c.read(&mut b)
        });
        let err = refused.expect_err("no valid client certificate");
        assert!(
            err.to_string().contains("CertificateRequired") || err.to_string().contains("alert"),
            "{err}"
        );
    }
    wait_for("both refusals counted", || {
        h.stats().total().tls_handshake_failures == 2
    });
    h.shutdown();
}

static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts `connection_made` (it must not run for a failed handshake).
struct CountMade;
impl Protocol for CountMade {
    type Message = ();
    fn connection_made(&mut self, _: &mut Conn<'_, Self>) {
        MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn garbage_instead_of_a_client_hello_gets_an_alert_and_a_close() {
    let (h, addr) = started(
        builder(1).listen(Listen::from("127.0.0.1:0").tls(server_tls(&[])), |_| {
            |_| CountMade
        }),
    );
    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (reply, _) = read_to_end_lossy(&mut s);
    assert_eq!(reply.first(), Some(&0x15), "a TLS alert record: {reply:?}");
    wait_for("the failure counted", || {
        h.stats().total().tls_handshake_failures == 1
    });
    assert_eq!(MADE.load(std::sync::atomic::Ordering::SeqCst), 0);
    h.shutdown();
}

#[test]
fn a_peer_that_stalls_in_the_handshake_is_closed_at_the_deadline() {
    let settings = Settings {
        tls_handshake_timeout: Duration::from_millis(200),
        ..Settings::default()
    };
    let (h, addr) = started(
        builder(1)
            .settings(settings)
            .listen(Listen::from("127.0.0.1:0").tls(server_tls(&[])), |_| {
                |_| Echo
            }),
    );
    // Half a ClientHello, then nothing.
    let mut s = connect(addr);
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01]).unwrap();
    let (_, _) = read_to_end_lossy(&mut s);
    wait_for("the timeout counted", || {
        h.stats().total().tls_handshake_timeouts == 1
    });
    assert_eq!(h.stats().total().tls_handshakes, 0);
    h.shutdown();
}

/// Reports how each connection ended.
struct ReportLost(mpsc::Sender<CloseReason>);
impl Protocol for ReportLost {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
    fn connection_lost(&mut self, _: &mut Conn<'_, Self>, reason: &CloseReason) {
        let _ = self.0.send(reason.clone());
    }
}

fn reporting_server() -> (shardloop::Handle, SocketAddr, mpsc::Receiver<CloseReason>) {
    let (tx, rx) = mpsc::channel();
    let tx = Arc::new(std::sync::Mutex::new(tx));
    let (h, addr) = started(builder(1).listen(
        Listen::from("127.0.0.1:0").tls(server_tls(&[])),
        move |_| {
            let tx = tx.lock().unwrap().clone();
            move |_| ReportLost(tx.clone())
        },
    ));
    (h, addr, rx)
}

#[test]
fn a_truncated_record_or_a_missing_close_notify_is_not_a_clean_close() {
    let (h, addr, lost) = reporting_server();
    // A record cut short, then FIN.
    let mut c = tls_connect(addr, &client_tls(&[])).unwrap();
    c.sock
        .write_all(&[0x17, 0x03, 0x03, 0x00, 0x40, 1, 2, 3])
        .unwrap();
    c.sock.shutdown(Shutdown::Write).unwrap();
    let reason = lost.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(reason, CloseReason::Tls(TlsFailure::Truncated));
    assert!(!reason.is_clean());

    // A whole record that does not decrypt: bad_record_mac, not data.
    let mut c = tls_connect(addr, &client_tls(&[])).unwrap();
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    forged.extend_from_slice(&[0xAB; 0x20]);
    c.sock.write_all(&forged).unwrap();
    let reason = lost.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        matches!(&reason, CloseReason::Tls(TlsFailure::Protocol(why)) if why.contains("decrypt")),
        "{reason:?}"
    );
    let (reply, _) = read_to_end_lossy(&mut c.sock);
    assert_eq!(
        reply.first(),
        Some(&0x17),
        "the alert, encrypted: {reply:?}"
    );
    wait_for("both counted", || h.stats().total().tls_errors == 2);
    h.shutdown();
}

#[test]
fn sixteen_mib_each_way_arrive_intact() {
    let (h, addr) = started(
        builder(1).listen(Listen::from("127.0.0.1:0").tls(server_tls(&[])), |_| {
            |_| Echo
        }),
    );
    let mut c = tls_connect(addr, &client_tls(&[])).unwrap();
    let total = 16 << 20;
    let chunk = 100_003; // not a multiple of the record size
    let pattern = |i: usize| (i.wrapping_mul(31) ^ (i >> 9)) as u8;
    let mut sent = 0;
    let mut back = vec![0u8; chunk];
    while sent < total {
        let n = chunk.min(total - sent);
        let data: Vec<u8> = (sent..sent + n).map(pattern).collect();
        c.write_all(&data).unwrap();
        c.read_exact(&mut back[..n]).unwrap();
        assert!(
            back[..n] == data[..],
            "echo differs in bytes {sent}..{}",
            sent + n
        );
        sent += n;
    }
    h.shutdown();
}

/// Sends 16 MiB as the output drains, then closes gracefully.
struct Producer {
    left: usize,
    next: usize,
    paused: bool,
}
impl Producer {
    fn produce(&mut self, conn: &mut Conn<'_, Self>) {
        // `paused` comes after the callback returns; `buffered` at once.
        while self.left > 0 && !self.paused && conn.buffered() < 1 << 20 {
            let n = self.left.min(64 * 1024);
            let data: Vec<u8> = (self.next..self.next + n)
                .map(|i| (i % 251) as u8)
                .collect();
            conn.write(&data);
            self.next += n;
            self.left -= n;
        }
        if self.left == 0 {
            conn.close();
        }
    }
}
impl Protocol for Producer {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        self.produce(conn);
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
    fn pause_producing(&mut self, _: &mut Conn<'_, Self>) {
        self.paused = true;
    }
    fn resume_producing(&mut self, conn: &mut Conn<'_, Self>) {
        self.paused = false;
        self.produce(conn);
    }
}

#[test]
fn a_graceful_close_sends_close_notify_after_every_byte() {
    let total = 16 << 20;
    let (h, addr) = started(builder(1).listen(
        Listen::from("127.0.0.1:0").tls(server_tls(&[])),
        move |_| {
            move |_| Producer {
                left: total,
                next: 0,
                paused: false,
            }
        },
    ));
    let mut c = tls_connect(addr, &client_tls(&[])).unwrap();
    let mut got = Vec::with_capacity(total);
    // rustls returns Ok(0) only after close_notify; EOF without it is an error.
    c.read_to_end(&mut got).expect("close_notify, then EOF");
    assert_eq!(got.len(), total);
    assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    h.shutdown();
}

/// A line protocol with STARTTLS: "OK" in plaintext, then TLS.
struct StartTls {
    tls: TlsServerConfig,
}
impl FrameProtocol<LineDecoder> for StartTls {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        if line == b"STARTTLS" {
            conn.write(b"OK\r\n");
            let tls = self.tls.clone();
            conn.start_tls(&tls);
        } else {
            let tls = if conn.tls_info().is_some() {
                "tls"
            } else {
                "plain"
            };
            conn.write(format!("{tls}: {}\r\n", String::from_utf8_lossy(line)).as_bytes());
        }
    }
}

/// A server speaking `StartTls` on a free loopback port.
pub(crate) fn starttls_server() -> (shardloop::Handle, SocketAddr) {
    let tls = server_tls(&[]);
    started(builder(1).listen("127.0.0.1:0", move |_| {
        let tls = tls.clone();
        move |_| {
            Framed::new(
                LineDecoder::new(b"\r\n".to_vec(), 1024),
                StartTls { tls: tls.clone() },
            )
        }
    }))
}

#[test]
fn starttls_takes_a_client_hello_sent_in_the_same_read() {
    let (h, addr) = starttls_server();
    let mut tcp = connect(addr);
    tcp.write_all(b"before\r\n").unwrap();
    assert_eq!(read_line(&mut tcp), "plain: before\r\n");

    let name = ServerName::try_from("localhost").unwrap();
    let mut conn =
        rustls::ClientConnection::new(client_tls(&[]).rustls_config().clone(), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    // The command and the ClientHello in one segment, as a pipelining client sends them.
    let mut burst = b"STARTTLS\r\n".to_vec();
    burst.extend_from_slice(&hello);
    tcp.write_all(&burst).unwrap();
    let mut ok = [0u8; 4];
    tcp.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"OK\r\n", "the answer to STARTTLS is plaintext");
    let mut c = rustls::StreamOwned::new(conn, tcp);
    c.write_all(b"after\r\n").unwrap();
    assert_eq!(read_line(&mut c), "tls: after\r\n");
    assert_eq!(h.stats().total().tls_handshakes, 1);
    h.shutdown();
}

/// An outbound client: sends a line, reports what came back (or why not).
struct Probe(mpsc::Sender<Result<String, String>>);
impl Protocol for Probe {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.write(b"ping\n");
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let _ = self.0.send(Ok(String::from_utf8_lossy(data).into_owned()));
        conn.close();
    }
    fn connect_failed(&mut self, _: &mut shardloop::ShardCtx, error: &std::io::Error) {
        let _ = self.0.send(Err(error.to_string()));
    }
}

#[test]
fn a_shard_connects_out_over_tls_and_verifies_the_server() {
    let (server, addr) = started(
        builder(1).listen(Listen::from("127.0.0.1:0").tls(server_tls(&[])), |_| {
            |_| Echo
        }),
    );
    let (client, _) = started(builder(1).listen("127.0.0.1:0", |_| |_| Echo));
    let probe = |cfg: TlsClientConfig, name: &'static str| {
        let (tx, rx) = mpsc::channel();
        client
            .post_to(0, move |ctx| {
                ctx.connect(Connect::tcp(addr).tls(cfg, name), Probe(tx));
            })
            .unwrap();
        rx.recv_timeout(Duration::from_secs(30)).unwrap()
    };
    assert_eq!(probe(client_tls(&[]), "localhost"), Ok("ping\n".into()));
    assert_eq!(probe(client_tls(&[]), "127.0.0.1"), Ok("ping\n".into()));
    let wrong_ca = TlsClientConfig::builder()
        .ca_pem(pki().other_ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let err = probe(wrong_ca, "localhost").unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    let err = probe(client_tls(&[]), "not-the-server.test").unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    wait_for("the client's failures counted", || {
        client.stats().total().tls_handshake_failures == 2
    });
    server.shutdown();
    client.shutdown();
}

/// A second PKI, and a client that trusts only it (what a renewed
/// certificate is checked with).
fn another_pki() -> (TestPki, TlsClientConfig) {
    let other = TestPki::new();
    let trusts = TlsClientConfig::builder()
        .ca_pem(other.ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    (other, trusts)
}

#[test]
fn a_reloaded_certificate_serves_new_handshakes() {
    let tls = server_tls(&[]);
    let (h, addr) = info_server(tls.clone());
    let (other, trusts_new) = another_pki();
    assert!(tls_connect(addr, &trusts_new).is_err());
    let mut old = tls_connect(addr, &client_tls(&[])).unwrap();
    read_line(&mut old);
    tls.reload_pem(
        other.server_cert_pem.as_bytes(),
        other.server_key_pem.as_bytes(),
    )
    .unwrap();
    let mut c = tls_connect(addr, &trusts_new).unwrap();
    assert!(read_line(&mut c).starts_with("alpn=- sni=localhost"));
    // The connection made before goes on.
    old.write_all(b"still here").unwrap();
    let mut got = [0u8; 10];
    old.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still here");
    // A bad reload changes nothing.
    assert!(tls.reload_pem(b"not pem", b"not pem").is_err());
    assert!(tls_connect(addr, &trusts_new).is_ok());
    h.shutdown();
}

/// An `InfoEcho` server on a TLS endpoint string whose certificate and key
/// are files in a fresh directory (`extra`: more endpoint fields).
fn file_tls_server(
    tag: &str,
    extra: &str,
) -> (
    shardloop::Handle,
    SocketAddr,
    std::path::PathBuf,
    shardloop_devtools::pki::PkiFiles,
) {
    let dir = std::env::temp_dir().join(format!("shardloop-tls-{tag}-{}", std::process::id()));
    let files = pki().write(&dir).unwrap();
    let ep = format!(
        "tls:port=0:interface=127.0.0.1:privateKey={}:certKey={}{extra}",
        files.key.display(),
        files.cert.display()
    );
    let (h, addr) = started(builder(1).listen(ep, |_| |_| InfoEcho));
    (h, addr, dir, files)
}

#[test]
fn tls_endpoint_strings_load_their_files_and_name_bad_ones() {
    let (h, addr, dir, files) = file_tls_server("ep", ":alpn=h2,http/1.1");
    let mut c = tls_connect(addr, &client_tls(&["h2"])).unwrap();
    assert!(read_line(&mut c).starts_with("alpn=h2 sni=localhost"));
    h.shutdown();

    let missing = format!("ssl:port=0:privateKey={}", dir.join("nope.pem").display());
    let err = builder(1)
        .listen(missing, |_| |_| Echo)
        .build()
        .err()
        .expect("a missing key file");
    assert!(err.to_string().contains("nope.pem"), "{err}");
    let mismatched = format!(
        "tls:port=0:privateKey={}:certKey={}",
        files.client_key.display(),
        files.cert.display()
    );
    let err = builder(1)
        .listen(mismatched, |_| |_| Echo)
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("key.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plaintext_connections_on_the_same_server_are_untouched() {
    let (h, _) = started(
        builder(1)
            .listen(Listen::from("127.0.0.1:0").tls(server_tls(&[])), |_| {
                |_| Echo
            })
            .listen("127.0.0.1:0", |_| |_| Echo),
    );
    let mut plain = connect(h.tcp_addr(1));
    plain.write_all(b"plain").unwrap();
    let mut got = [0u8; 5];
    plain.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"plain");
    let mut c = tls_connect(h.tcp_addr(0), &client_tls(&[])).unwrap();
    c.write_all(b"tls").unwrap();
    let mut got = [0u8; 3];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"tls");
    // Counters are published once per loop iteration: the echo can come first.
    wait_for("one handshake, two connections counted", || {
        let t = h.stats().total();
        (t.tls_handshakes, t.connections_accepted) == (1, 2)
    });
    h.shutdown();
}

/// Sends "hi" once connected; reports each answer and closes.
struct Hello(mpsc::Sender<Vec<u8>>);
impl Protocol for Hello {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.write(b"hi");
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let _ = self.0.send(data.to_vec());
        conn.close();
    }
}

#[test]
fn the_reconnecting_client_reconnects_over_tls_and_counts_bad_handshakes_as_failures() {
    let (server, addr) = started(
        builder(1).listen(Listen::from("127.0.0.1:0").tls(server_tls(&[])), |_| {
            |_| Echo
        }),
    );
    let (client, _) = started(builder(1).listen("127.0.0.1:0", |_| |_| Echo));
    let policy = shardloop::client::reconnect::ReconnectPolicy {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        factor: 2.0,
        jitter: 0.1,
        max_retries: Some(2),
        connect_timeout: Some(Duration::from_secs(5)),
    };
    let (tx, rx) = mpsc::channel();
    let p = policy.clone();
    client
        .post_to(0, move |ctx| {
            let cfg = client_tls(&[]);
            let make = move || Hello(tx.clone());
            ctx.connect_reconnecting(Connect::tcp(addr).tls(cfg, "localhost"), p, make);
        })
        .unwrap();
    // It closes after each answer, and comes back: two answers prove both.
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), b"hi");
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), b"hi");

    // A server it cannot verify: every attempt fails its handshake, then it gives up.
    let (done_tx, done_rx) = mpsc::channel();
    client
        .post_to(0, move |ctx| {
            let wrong = TlsClientConfig::builder()
                .ca_pem(pki().other_ca_pem.as_bytes())
                .unwrap()
                .build()
                .unwrap();
            let (tx, _rx) = mpsc::channel();
            let r = ctx.connect_reconnecting(
                Connect::tcp(addr).tls(wrong, "localhost"),
                policy,
                move || Hello(tx.clone()),
            );
            ctx.call_every(Duration::from_millis(20), move |_| {
                if r.gave_up() {
                    let _ = done_tx.send((r.attempts(), r.is_connected()));
                }
            });
        })
        .unwrap();
    let (attempts, connected) = done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!((attempts, connected), (3, false));
    server.shutdown();
    client.shutdown();
}

#[test]
fn an_endpoint_string_tls_listener_rereads_its_files_on_reload() {
    let (h, addr, dir, files) = file_tls_server("reload", "");
    let (other, trusts_new) = another_pki();
    assert!(tls_connect(addr, &trusts_new).is_err());
    // Renewed files (certbot), then SIGHUP's reload.
    std::fs::write(&files.cert, &other.server_cert_pem).unwrap();
    std::fs::write(&files.key, &other.server_key_pem).unwrap();
    h.reload();
    let mut c = tls_connect(addr, &trusts_new).unwrap();
    assert!(read_line(&mut c).starts_with("alpn=- sni=localhost"));
    // A broken file on the next reload keeps the certificate serving.
    std::fs::write(&files.key, "not a key").unwrap();
    h.reload();
    assert!(tls_connect(addr, &trusts_new).is_ok());
    h.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn busy_time_counts_tls_work() {
    let (h, addr) = info_server(server_tls(&[]));
    let w = crate::busy_time::measure(&h, 1.5, |until| {
        let mut c = tls_connect(addr, &client_tls(&[])).unwrap();
        read_line(&mut c);
        let mut b = [0u8; 1024];
        while Instant::now() < until {
            c.write_all(&[5u8; 1024]).unwrap();
            c.read_exact(&mut b).unwrap();
        }
    });
    crate::busy_time::check("TLS echo 1 KiB ping-pong", &w);
    h.shutdown();
}
