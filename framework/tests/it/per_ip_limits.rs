//! Per-source-address limits through real sockets: open connections and
//! connection rate per address, the refused ones reset before their
//! protocol starts, the counts freed when connections end, and the address
//! a trusted PROXY header gives counted instead of the proxy's.

use crate::common::*;
use shardloop::limit::RateLimit;
use shardloop::Settings;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Echoes one byte: the connection was admitted and served.
fn served(s: &mut TcpStream) -> bool {
    if s.write_all(b"x").is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(1))
}

/// The server reset the connection (or closed it) without serving it.
fn refused(s: &mut TcpStream) -> bool {
    let _ = s.write_all(b"x");
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Err(e) => matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        Ok(_) => false,
    }
}

fn server(settings: Settings, shards: usize) -> (shardloop::Handle, SocketAddr) {
    echo_with(builder(shards).settings(settings))
}

fn echo_with(b: shardloop::ServerBuilder) -> (shardloop::Handle, SocketAddr) {
    started(b.listen("127.0.0.1:0", |_| |_| Echo))
}

fn refusals(h: &shardloop::Handle) -> (u64, u64) {
    let s = h.stats();
    (
        s.shards.iter().map(|s| s.refused_per_ip_connections).sum(),
        s.shards.iter().map(|s| s.refused_per_ip_rate).sum(),
    )
}

#[test]
fn open_connections_per_address_are_capped_across_shards_and_freed_on_close() {
    let (h, addr) = server(
        Settings {
            max_connections_per_ip: Some(3),
            ..Settings::default()
        },
        2,
    );
    let mut open: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    for s in &mut open {
        assert!(served(s));
    }
    let mut fourth = connect(addr);
    assert!(refused(&mut fourth), "the fourth from 127.0.0.1 is refused");
    wait_for("the refusal counted", || refusals(&h) == (1, 0));
    // One closes: room for one more (once the close is seen).
    drop(open.pop());
    wait_for("the close to free a place", || {
        let mut s = connect(addr);
        if served(&mut s) {
            open.push(s);
            true
        } else {
            false
        }
    });
    assert_eq!(open.len(), 3);
    h.shutdown();
}

#[test]
fn a_fast_address_is_refused_past_its_rate_and_let_in_when_it_refills() {
    let (h, addr) = server(
        Settings {
            connection_rate_per_ip: Some(RateLimit::per_second(1).burst(2)),
            ..Settings::default()
        },
        1,
    );
    let mut a = connect(addr);
    let mut b = connect(addr);
    assert!(served(&mut a) && served(&mut b), "the burst of 2");
    let mut c = connect(addr);
    assert!(refused(&mut c), "the third at once is past the rate");
    wait_for("the refusal counted", || refusals(&h) == (0, 1));
    // A second later the bucket has a token again.
    std::thread::sleep(Duration::from_millis(1100));
    let mut d = connect(addr);
    assert!(served(&mut d));
    h.shutdown();
}

#[test]
fn behind_a_trusted_proxy_the_real_client_address_is_counted() {
    let listen = shardloop::endpoint::Listen::from("127.0.0.1:0").proxy_protocol(true);
    let (h, addr) = one_per_address(listen);
    let via_proxy = |client: &str| {
        let mut s = connect(addr);
        s.write_all(format!("PROXY TCP4 {client} 198.51.100.1 4000 443\r\n").as_bytes())
            .unwrap();
        s
    };
    // Two clients through the same proxy address (127.0.0.1): both in.
    let mut one = via_proxy("203.0.113.1");
    let mut two = via_proxy("203.0.113.2");
    assert!(served(&mut one) && served(&mut two));
    // A second connection of the first client: refused.
    let mut again = via_proxy("203.0.113.1");
    assert!(refused(&mut again));
    wait_for("the refusal counted", || refusals(&h) == (1, 0));
    h.shutdown();
}

/// On a TLS listener (no PROXY header to wait for) the address is checked
/// at accept: a refused peer costs no handshake and no handshake timeout.
#[test]
fn a_refused_tls_peer_costs_no_handshake() {
    use crate::tls::{client_tls, server_tls, tls_connect};
    let listen = shardloop::endpoint::Listen::from("127.0.0.1:0").tls(server_tls(&[]));
    let (h, addr) = one_per_address(listen);
    let mut first = tls_connect(addr, &client_tls(&[])).unwrap();
    first.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    first.read_exact(&mut b).unwrap();
    // The second sends nothing: refused at once, not after the handshake
    // deadline (10 s) it would otherwise wait for.
    let mut second = connect(addr);
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t = std::time::Instant::now();
    let got = second.read(&mut b);
    assert!(
        matches!(&got, Ok(0)) || matches!(&got, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "{got:?} after {:?}",
        t.elapsed()
    );
    wait_for("the refusal counted", || refusals(&h) == (1, 0));
    let s = h.stats().total();
    assert_eq!(
        (
            s.tls_handshakes,
            s.tls_handshake_failures,
            s.tls_handshake_timeouts
        ),
        (1, 0, 0)
    );
    h.shutdown();
}

/// An echo server on `listen` that allows one connection per address.
fn one_per_address(listen: shardloop::endpoint::Listen) -> (shardloop::Handle, SocketAddr) {
    started(
        builder(1)
            .settings(Settings {
                max_connections_per_ip: Some(1),
                ..Settings::default()
            })
            .listen(listen, |_| |_| Echo),
    )
}
