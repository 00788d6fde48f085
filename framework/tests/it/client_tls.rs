//! `ClientStream` over TLS: STARTTLS after a plaintext exchange (the
//! session's details once the handshake is done, plaintext before it,
//! encrypted after), a server name that does not verify, and ALPN read
//! back from a connection that starts with TLS.
use crate::common::{builder, on_shard, started};
use crate::tls::{client_tls, server_tls, starttls_server};

use shardloop::client::ClientStream;
use shardloop::endpoint::{Connect, Listen};
use std::io;
use std::net::SocketAddr;

async fn line(s: &mut ClientStream) -> io::Result<String> {
    let l = s.read_line(1024).await?.unwrap_or_default();
    Ok(String::from_utf8_lossy(&l).into_owned())
}

#[test]
fn starttls_on_a_client_stream() {
    let (h, addr) = starttls_server();
    let got = on_shard(&h, move || async move {
        let mut s = ClientStream::connect(Connect::tcp(addr)).await?;
        assert!(s.tls_info().is_none());
        s.write_all(b"before\r\n").await?;
        let before = line(&mut s).await?;
        s.write_all(b"STARTTLS\r\n").await?;
        let ok = line(&mut s).await?;
        let info = s.start_tls(&client_tls(&[]), "localhost").await?;
        s.write_all(b"after\r\n").await?;
        let after = line(&mut s).await?;
        io::Result::Ok((
            before,
            ok,
            info.protocol_version,
            after,
            s.tls_info().is_some(),
        ))
    })
    .unwrap();
    assert_eq!(got.0, "plain: before");
    assert_eq!(got.1, "OK");
    assert_eq!(got.2, "TLSv1.3");
    assert_eq!(got.3, "tls: after");
    assert!(got.4);
    // The server's and the client's (both on this server's shard).
    assert_eq!(h.stats().total().tls_handshakes, 2);
}

#[test]
fn starttls_to_a_name_the_certificate_does_not_carry_fails() {
    let (h, addr) = starttls_server();
    let e = on_shard(&h, move || async move {
        let mut s = ClientStream::connect(Connect::tcp(addr)).await?;
        s.write_all(b"STARTTLS\r\n").await?;
        line(&mut s).await?;
        s.start_tls(&client_tls(&[]), "not-the-server.example")
            .await
    })
    .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
}

#[test]
fn alpn_is_read_back_from_a_tls_client_stream() {
    let tls = server_tls(&["h2", "http/1.1"]);
    let listen = Listen::from("127.0.0.1:0".parse::<SocketAddr>().unwrap()).tls(tls);
    let (h, addr) = started(builder(1).listen(listen, |_| |_| crate::common::Echo));
    let alpn = on_shard(&h, move || async move {
        let c = Connect::tcp(addr).tls(client_tls(&["http/1.1"]), "localhost");
        let s = ClientStream::connect(c).await?;
        io::Result::Ok(s.tls_info().and_then(|i| i.alpn))
    })
    .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
}
