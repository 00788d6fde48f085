//! Endpoint parsing: good descriptions, and errors naming the bad field.

use super::*;
use std::path::PathBuf;
use std::time::Duration;

#[test]
fn server_endpoints() {
    assert_eq!(
        "tcp:8080".parse::<ServerEndpoint>().unwrap(),
        ServerEndpoint::Tcp {
            addr: "0.0.0.0:8080".parse().unwrap(),
            options: SocketOptions::default(),
            proxy: None
        }
    );
    assert_eq!(
        "tcp:port=80:interface=127.0.0.1:backlog=1024"
            .parse::<ServerEndpoint>()
            .unwrap(),
        ServerEndpoint::Tcp {
            addr: "127.0.0.1:80".parse().unwrap(),
            options: SocketOptions {
                backlog: Some(1024),
                ..SocketOptions::default()
            },
            proxy: None
        }
    );
    assert_eq!(
        r"tcp6:port=81:interface=\:\:1"
            .parse::<ServerEndpoint>()
            .unwrap(),
        ServerEndpoint::Tcp {
            addr: "[::1]:81".parse().unwrap(),
            options: SocketOptions::default(),
            proxy: None
        }
    );
    assert_eq!(
        "unix:/tmp/a.sock".parse::<ServerEndpoint>().unwrap(),
        ServerEndpoint::Unix {
            path: "/tmp/a.sock".into(),
            backlog: None
        }
    );
    assert_eq!(
        "unix:address=/tmp/b.sock:backlog=5"
            .parse::<ServerEndpoint>()
            .unwrap(),
        ServerEndpoint::Unix {
            path: "/tmp/b.sock".into(),
            backlog: Some(5)
        }
    );
}

#[test]
fn socket_options_in_endpoint_strings() {
    let ep = "tcp:port=80:reusePort=true:noDelay=false:keepAlive=60:keepAliveInterval=10:keepAliveCount=5:rcvBuf=65536:sndBuf=131072:userTimeout=2.5:fastOpen=16:backlog=99";
    let ServerEndpoint::Tcp { options: o, .. } = ep.parse::<ServerEndpoint>().unwrap() else {
        panic!("tcp")
    };
    assert_eq!(o.reuse_port, Some(true));
    assert_eq!(o.nodelay, Some(false));
    assert_eq!(
        o.keepalive,
        Some(crate::net::Keepalive {
            idle: Duration::from_secs(60),
            interval: Some(Duration::from_secs(10)),
            count: Some(5)
        })
    );
    assert_eq!((o.recv_buffer, o.send_buffer), (Some(65536), Some(131072)));
    assert_eq!(o.user_timeout, Some(Duration::from_millis(2500)));
    assert_eq!((o.fastopen, o.backlog), (Some(16), Some(99)));
    let v6 = r"tcp6:port=80:interface=\:\:1:v6Only=true"
        .parse::<ServerEndpoint>()
        .unwrap();
    assert!(matches!(v6, ServerEndpoint::Tcp { options, .. } if options.ipv6_only == Some(true)));
    let tls = "tls:port=1:privateKey=k.pem:reusePort=true"
        .parse::<ServerEndpoint>()
        .unwrap();
    assert!(matches!(tls, ServerEndpoint::Tls { options, .. } if options.reuse_port == Some(true)));
    let e = |s: &str| s.parse::<ServerEndpoint>().unwrap_err();
    assert_eq!(e("tcp:80:reusePort=yes").field, "reusePort");
    assert_eq!(e("tcp:80:proxyProtocol=1").field, "proxyProtocol");
    assert_eq!(e("tcp:80:keepAlive=-1").field, "keepAlive");
    assert_eq!(e("tcp:80:keepAliveCount=3").field, "keepAlive");
    assert_eq!(e("tcp:80:rcvBuf=big").field, "rcvBuf");
    assert_eq!(e("tcp:80:userTimeout=NaN").field, "userTimeout");
    assert_eq!(e("tcp:80:fastOpen=-2").field, "fastOpen");
}

#[test]
fn errors_name_the_bad_field() {
    let e = |s: &str| s.parse::<ServerEndpoint>().unwrap_err();
    assert_eq!(e("tcp:port=abc").field, "port");
    assert_eq!(e("tcp:70000").field, "port");
    assert_eq!(e("tcp").field, "port");
    assert_eq!(e("tcp:80:interface=localhost").field, "interface");
    assert_eq!(e("tcp6:80:interface=127.0.0.1").field, "interface");
    assert_eq!(e("tcp:80:backlog=-1").field, "backlog");
    assert_eq!(e("tcp:80:colour=red").field, "colour");
    assert_eq!(e("udp:80").field, "type");
    assert_eq!(e("tls:8443").field, "privateKey");
    assert_eq!(
        e("tls:8443:privateKey=k.pem:clientAuth=optional").field,
        "clientAuth"
    );
    assert_eq!(
        e("ssl:8443:privateKey=k.pem:caCerts=c.pem:clientAuth=maybe").field,
        "clientAuth"
    );
    assert_eq!(e("tls:port=x:privateKey=k.pem").field, "port");
    assert_eq!(e("unix:").field, "address");
    let msg = e("tcp:port=abc").to_string();
    assert!(
        msg.contains("tcp:port=abc") && msg.contains("port") && msg.contains("abc"),
        "{msg}"
    );
}

#[test]
fn client_endpoints() {
    assert_eq!(
        "tcp:host=127.0.0.1:port=6379:timeout=2.5"
            .parse::<ClientEndpoint>()
            .unwrap(),
        ClientEndpoint::Tcp {
            host: "127.0.0.1".into(),
            port: 6379,
            timeout: Some(Duration::from_millis(2500))
        }
    );
    assert_eq!(
        "unix:path=/run/x.sock".parse::<ClientEndpoint>().unwrap(),
        ClientEndpoint::Unix {
            path: "/run/x.sock".into(),
            timeout: None
        }
    );
    let e = |s: &str| s.parse::<ClientEndpoint>().unwrap_err();
    assert_eq!(e("tcp:port=1").field, "host");
    assert_eq!(e("tcp6:host=db.internal:port=1").field, "host");
    assert_eq!(e("tcp6:host=127.0.0.1:port=1").field, "host");
    assert_eq!(
        "tcp:host=db.internal:port=5432"
            .parse::<ClientEndpoint>()
            .unwrap(),
        ClientEndpoint::Tcp {
            host: "db.internal".into(),
            port: 5432,
            timeout: None
        }
    );
    assert_eq!(e("tcp:host=127.0.0.1").field, "port");
    assert_eq!(e("tcp:host=127.0.0.1:port=1:timeout=-3").field, "timeout");
    assert_eq!(e("tcp6:host=127.0.0.1:port=1").field, "host");
    let tls = "tls:host=example.com:port=443:caCerts=ca.pem:alpn=h2,http/1.1:timeout=3"
        .parse::<ClientEndpoint>()
        .unwrap();
    let ClientEndpoint::Tls {
        host, port, tls, ..
    } = tls
    else {
        panic!("{tls:?}")
    };
    assert_eq!((host.as_str(), port), ("example.com", 443));
    assert_eq!(tls.ca_certs, Some(PathBuf::from("ca.pem")));
    assert_eq!(tls.alpn, vec!["h2", "http/1.1"]);
    assert_eq!(e("ssl:host=a:port=1:certKey=c.pem").field, "privateKey");
    assert_eq!(e("tls:host=a:port=1:insecure=yes").field, "insecure");
    assert_eq!(e("tls:port=1").field, "host");
}

#[test]
fn proxy_trust_fields_parse_cidrs_hosts_and_the_untrusted_action() {
    use crate::api::{ProxyTrust, UntrustedProxy};
    let trust = |s: &str| match s.parse::<ServerEndpoint>().unwrap() {
        ServerEndpoint::Tcp { proxy, .. } | ServerEndpoint::Tls { proxy, .. } => proxy,
        ServerEndpoint::Unix { .. } => unreachable!(),
    };
    assert_eq!(trust("tcp:80"), None);
    assert_eq!(
        trust("tcp:80:proxyProtocol=true"),
        Some(ProxyTrust::default())
    );
    let t = trust(
        r"tcp:80:proxyProtocol=true:proxyTrusted=10.0.0.0/8, 192.0.2.7,\:\:1:proxyUntrusted=ignore",
    )
    .unwrap();
    assert_eq!(t.untrusted, UntrustedProxy::Ignore);
    assert_eq!(t.from.as_ref().map(Vec::len), Some(3));
    assert!(t.trusts("10.1.2.3".parse().unwrap()));
    assert!(t.trusts("192.0.2.7".parse().unwrap()));
    assert!(!t.trusts("192.0.2.8".parse().unwrap()));
    assert!(t.trusts("::1".parse().unwrap()));
    // An IPv4-mapped IPv6 peer (a dual-stack listener) is its IPv4 address.
    assert!(t.trusts("::ffff:10.9.9.9".parse().unwrap()));
    assert!(!t.trusts("::2".parse().unwrap()));
    let e = |s: &str| s.parse::<ServerEndpoint>().unwrap_err();
    assert_eq!(
        e("tcp:80:proxyProtocol=true:proxyTrusted=10.0.0.0/33").field,
        "proxyTrusted"
    );
    assert_eq!(
        e("tcp:80:proxyProtocol=true:proxyTrusted=nope").field,
        "proxyTrusted"
    );
    assert_eq!(
        e("tcp:80:proxyProtocol=true:proxyUntrusted=maybe").field,
        "proxyUntrusted"
    );
    assert_eq!(e("tcp:80:proxyTrusted=10.0.0.0/8").field, "proxyTrusted");
}
