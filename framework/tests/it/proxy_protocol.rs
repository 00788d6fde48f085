//! PROXY protocol listeners on 127.0.0.1: the real client's address in
//! `peer_addr`, v1 and v2 headers (split across reads), TLS behind the
//! header, and missing, malformed or late headers closed with a reason.

use crate::common::*;
use shardloop::{CloseReason, Conn, Protocol, Settings};
use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

/// Reports its addresses and header on one line, echoes, reports its end.
struct WhoAmI(mpsc::Sender<CloseReason>);
impl Protocol for WhoAmI {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let version = conn.proxy_header().map_or(0, |h| h.version);
        let line = format!(
            "peer={} local={} v{version}\n",
            conn.peer_addr(),
            conn.local_addr()
        );
        conn.write(line.as_bytes());
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
    fn connection_lost(&mut self, _: &mut Conn<'_, Self>, reason: &CloseReason) {
        let _ = self.0.send(reason.clone());
    }
}

fn server(
    settings: Settings,
) -> (
    shardloop::Handle,
    std::net::SocketAddr,
    mpsc::Receiver<CloseReason>,
) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let (h, addr) = started(builder(1).settings(settings).listen(
        shardloop::endpoint::Listen::from("127.0.0.1:0").proxy_protocol(true),
        move |_| {
            let tx = tx.lock().unwrap().clone();
            move |_| WhoAmI(tx.clone())
        },
    ));
    (h, addr, rx)
}

fn line(c: &mut std::net::TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while out.last() != Some(&b'\n') {
        assert_eq!(c.read(&mut b).unwrap(), 1, "EOF in {out:?}");
        out.push(b[0]);
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn a_v1_header_gives_the_protocol_the_real_client() {
    let (h, addr, _) = server(Settings::default());
    let mut c = connect(addr);
    c.write_all(b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 443\r\nhello")
        .unwrap();
    assert_eq!(
        line(&mut c),
        "peer=203.0.113.7:56324 local=198.51.100.1:443 v1\n"
    );
    let mut echo = [0u8; 5];
    c.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"hello");
    wait_for("the header counted", || {
        h.stats().total().proxy_headers == 1
    });
    h.shutdown();
}

#[test]
fn a_v2_header_split_across_reads_and_a_local_health_check() {
    let (h, addr, _) = server(Settings::default());
    let mut hdr = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    hdr.extend_from_slice(
        &"2001:db8::5"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    hdr.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    hdr.extend_from_slice(&[0x13, 0x88, 0x01, 0xbb]);
    let mut c = connect(addr);
    c.set_nodelay(true).unwrap();
    for part in hdr.chunks(7) {
        c.write_all(part).unwrap();
        // Separate segments, so the server reads the header in pieces.
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        line(&mut c),
        "peer=[2001:db8::5]:5000 local=[2001:db8::1]:443 v2\n"
    );

    // LOCAL: the proxy checking health; the addresses stay the proxy's.
    let mut c = connect(addr);
    c.write_all(b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00")
        .unwrap();
    let l = line(&mut c);
    assert!(
        l.starts_with("peer=127.0.0.1:") && l.ends_with(" v2\n"),
        "{l}"
    );
    h.shutdown();
}

#[test]
fn no_header_or_a_malformed_one_closes_with_the_reason() {
    let (h, addr, _) = server(Settings::default());
    for (input, why) in [
        (&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], "no PROXY header"),
        (
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n"[..],
            "not a port",
        ),
    ] {
        let mut c = connect(addr);
        c.write_all(input).unwrap();
        let (got, _) = read_to_end_lossy(&mut c);
        assert!(got.is_empty(), "the protocol never ran: {got:?} ({why})");
    }
    wait_for("both refusals counted", || {
        h.stats().total().proxy_header_errors == 2
    });
    assert_eq!(h.stats().total().proxy_headers, 0);
    h.shutdown();
}

#[test]
fn a_header_that_never_completes_times_out() {
    let settings = Settings {
        proxy_header_timeout: Duration::from_millis(200),
        ..Settings::default()
    };
    let (h, addr, _) = server(settings);
    let mut c = connect(addr);
    c.write_all(b"PROXY TCP4 1.2.3.4").unwrap();
    let (got, _) = read_to_end_lossy(&mut c);
    assert!(got.is_empty());
    wait_for("the timeout counted", || {
        h.stats().total().proxy_header_errors == 1
    });
    h.shutdown();
}

#[test]
fn tls_behind_a_proxy_header_from_an_endpoint_string() {
    use rustls::pki_types::ServerName;
    let pki = shardloop_devtools::pki::TestPki::new();
    let dir = std::env::temp_dir().join(format!("sl-proxy-tls-{}", std::process::id()));
    let f = pki.write(&dir).unwrap();
    let ep = format!(
        "tls:port=0:interface=127.0.0.1:privateKey={}:certKey={}:proxyProtocol=true",
        f.key.display(),
        f.cert.display()
    );
    let (tx, _rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let (h, addr) = started(builder(1).listen(ep, move |_| {
        let tx = tx.lock().unwrap().clone();
        move |_| WhoAmI(tx.clone())
    }));
    let mut tcp = connect(addr);
    tcp.write_all(b"PROXY TCP4 203.0.113.9 198.51.100.1 4000 443\r\n")
        .unwrap();
    let cfg = shardloop::tls::TlsClientConfig::builder()
        .ca_pem(pki.ca_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let conn = rustls::ClientConnection::new(
        cfg.rustls_config().clone(),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut first = Vec::new();
    let mut b = [0u8; 1];
    while first.last() != Some(&b'\n') {
        assert_eq!(s.read(&mut b).unwrap(), 1);
        first.push(b[0]);
    }
    assert_eq!(
        String::from_utf8(first).unwrap(),
        "peer=203.0.113.9:4000 local=198.51.100.1:443 v1\n"
    );
    // Counters are published once per loop iteration: the reply can come first.
    wait_for("the header and the handshake counted", || {
        let t = h.stats().total();
        (t.proxy_headers, t.tls_handshakes) == (1, 1)
    });
    h.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

fn server_on(listen: shardloop::endpoint::Listen) -> (shardloop::Handle, std::net::SocketAddr) {
    let (tx, _rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    started(builder(1).listen(listen, move |_| {
        let tx = tx.lock().unwrap().clone();
        move |_| WhoAmI(tx.clone())
    }))
}

const V1: &[u8] = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 443\r\n";

/// A v2 header claiming 203.0.113.9:5000 -> 198.51.100.1:443.
fn v2() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&[203, 0, 113, 9, 198, 51, 100, 1, 0x13, 0x88, 0x01, 0xbb]);
    h
}

#[test]
fn a_header_from_a_trusted_source_is_honoured_in_v1_and_v2() {
    // The test's client is 127.0.0.1, inside the list.
    let listen = shardloop::endpoint::Listen::from("127.0.0.1:0").proxy_trusted_from([
        "10.0.0.0/8".parse().unwrap(),
        "127.0.0.0/8".parse().unwrap(),
    ]);
    let (h, addr) = server_on(listen);
    let mut c = connect(addr);
    c.write_all(V1).unwrap();
    assert_eq!(
        line(&mut c),
        "peer=203.0.113.7:56324 local=198.51.100.1:443 v1\n"
    );
    let mut c = connect(addr);
    c.write_all(&v2()).unwrap();
    assert_eq!(
        line(&mut c),
        "peer=203.0.113.9:5000 local=198.51.100.1:443 v2\n"
    );
    assert_eq!(h.stats().total().proxy_untrusted, 0);
    h.shutdown();
}

#[test]
fn a_header_from_an_untrusted_source_is_refused_and_counted_in_v1_and_v2() {
    // From an endpoint string; 127.0.0.1 is not in 10.0.0.0/8.
    let (h, addr) = server_on(shardloop::endpoint::Listen::from(
        "tcp:0:interface=127.0.0.1:proxyProtocol=true:proxyTrusted=10.0.0.0/8",
    ));
    for header in [V1.to_vec(), v2()] {
        let mut c = connect(addr);
        let _ = c.write_all(&header);
        let (got, _) = read_to_end_lossy(&mut c);
        assert!(
            got.is_empty(),
            "no protocol ran: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    wait_for("both counted", || h.stats().total().proxy_untrusted == 2);
    assert_eq!(h.stats().total().proxy_headers, 0);
    h.shutdown();
}

#[test]
fn a_header_from_an_untrusted_source_can_be_read_and_ignored() {
    let listen = shardloop::endpoint::Listen::from("127.0.0.1:0")
        .proxy_trusted_from(["10.0.0.0/8".parse().unwrap()])
        .proxy_untrusted(shardloop::proxy::UntrustedProxy::Ignore);
    let (h, addr) = server_on(listen);
    for header in [V1.to_vec(), v2()] {
        let mut c = connect(addr);
        c.write_all(&header).unwrap();
        c.write_all(b"ping").unwrap();
        let l = line(&mut c);
        // The socket's own addresses, and no header shown to the protocol.
        assert!(
            l.starts_with("peer=127.0.0.1:") && l.ends_with(" v0\n"),
            "{l}"
        );
        let mut echo = [0u8; 4];
        c.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"ping", "the header itself is not passed on as data");
    }
    wait_for("both counted", || h.stats().total().proxy_untrusted == 2);
    h.shutdown();
}
