//! What `compare` runs: the servers (ours and the peers) and the scenarios.

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Echo,
    Http,
    /// HTTP `GET /key/greeting` through a gateway to a resp_kv backend.
    Gateway,
    /// UDP echo of 64-byte datagrams.
    Udp,
    /// WebSocket echo of binary messages (`GET /ws`).
    WebSocket,
    /// HTTP `GET /json`: a small object serialised per request
    /// (TechEmpower's JSON test).
    Json,
    /// HTTP `GET /1mib`: a 1 MiB body (one shared buffer), large sends.
    Big,
}

pub(crate) struct ServerDef {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// Program (relative to the target dir) and arguments; the port is appended.
    pub(crate) program: String,
    pub(crate) args: Vec<&'static str>,
    /// The program pins itself (shardloop); others are pinned with taskset.
    pub(crate) self_pinned: bool,
    /// Spoken to over TLS (shardloop's examples get `--tls-cert/--tls-key`).
    pub(crate) tls: bool,
    /// In the TLS scenarios (`--tls`) rather than the plaintext ones.
    pub(crate) tls_group: bool,
}

pub(crate) fn def(
    name: &'static str,
    kind: Kind,
    program: &str,
    args: &[&'static str],
) -> ServerDef {
    ServerDef {
        name,
        kind,
        program: program.into(),
        args: args.to_vec(),
        self_pinned: program.starts_with("examples/"),
        tls: false,
        tls_group: false,
    }
}

pub(crate) fn tls_servers() -> Vec<ServerDef> {
    let tls = |d: ServerDef, speaks: bool| ServerDef {
        tls: speaks,
        tls_group: true,
        ..d
    };
    let one = ["--shards", "1", "--cores", "0"];
    let reuse = ["--shards", "1", "--cores", "0", "--reuse-port"];
    vec![
        tls(
            def("shardloop over TLS", Kind::Echo, "examples/echo", &one),
            true,
        ),
        tls(
            def(
                "shardloop plaintext (no TLS)",
                Kind::Echo,
                "examples/echo",
                &one,
            ),
            false,
        ),
        tls(
            def("shardloop", Kind::Http, "examples/http_hello", &one),
            true,
        ),
        tls(
            def(
                "shardloop --reuse-port",
                Kind::Http,
                "examples/http_hello",
                &reuse,
            ),
            true,
        ),
        tls(
            def("nginx (1 process, pinned)", Kind::Http, NGINX, &[]),
            true,
        ),
    ]
}

/// The UDP servers (`--udp`).
pub(crate) fn udp_servers() -> Vec<ServerDef> {
    vec![
        def(
            "shardloop udp_echo",
            Kind::Udp,
            "examples/udp_echo",
            &["--shards", "1", "--cores", "0"],
        ),
        def(
            "recvmmsg/sendmmsg loop (hand-written)",
            Kind::Udp,
            "peer_udp",
            &[],
        ),
    ]
}

/// The program name that stands for nginx (started by `tls::start_nginx`).
pub(crate) const NGINX: &str = "nginx";

pub(crate) fn servers() -> Vec<ServerDef> {
    let one = ["--shards", "1", "--cores", "0"];
    let reuse = ["--shards", "1", "--cores", "0", "--reuse-port"];
    let uring = [
        "--shards",
        "1",
        "--cores",
        "0",
        "--reactor-backend",
        "io-uring",
    ];
    let uring_reuse = [
        "--shards",
        "1",
        "--cores",
        "0",
        "--reuse-port",
        "--reactor-backend",
        "io-uring",
    ];
    let async_one = ["--shards", "1", "--cores", "0", "--async"];
    vec![
        def("shardloop", Kind::Echo, "examples/echo", &one),
        def("shardloop io-uring", Kind::Echo, "examples/echo", &uring),
        def(
            "shardloop, async task per connection",
            Kind::Echo,
            "examples/echo",
            &async_one,
        ),
        def(
            "mio (hand-written)",
            Kind::Echo,
            "peer_mio",
            &["--mode", "echo"],
        ),
        def(
            "tokio current-thread",
            Kind::Echo,
            "peer_tokio",
            &["--mode", "echo", "--flavor", "current"],
        ),
        def(
            "tokio multi-thread (1 worker)",
            Kind::Echo,
            "peer_tokio",
            &["--mode", "echo", "--flavor", "multi", "--workers", "1"],
        ),
        def("shardloop", Kind::Http, "examples/http_hello", &one),
        def(
            "shardloop io-uring",
            Kind::Http,
            "examples/http_hello",
            &uring,
        ),
        def(
            "shardloop --reuse-port",
            Kind::Http,
            "examples/http_hello",
            &reuse,
        ),
        def(
            "shardloop io-uring --reuse-port",
            Kind::Http,
            "examples/http_hello",
            &uring_reuse,
        ),
        def(
            "mio (hand-written)",
            Kind::Http,
            "peer_mio",
            &["--mode", "http"],
        ),
        def(
            "tokio current-thread",
            Kind::Http,
            "peer_tokio",
            &["--mode", "http", "--flavor", "current"],
        ),
        def(
            "hyper 1.x, tokio current-thread",
            Kind::Http,
            "peer_hyper",
            &[],
        ),
        def("nginx (1 process, pinned)", Kind::Http, NGINX, &[]),
        def("shardloop", Kind::Json, "examples/http_hello", &one),
        def(
            "shardloop io-uring",
            Kind::Json,
            "examples/http_hello",
            &uring,
        ),
        def("shardloop", Kind::Big, "examples/http_hello", &one),
        def(
            "shardloop io-uring",
            Kind::Big,
            "examples/http_hello",
            &uring,
        ),
        def(
            "hyper 1.x, tokio current-thread",
            Kind::Json,
            "peer_hyper",
            &["--json"],
        ),
        def("nginx (1 process, pinned)", Kind::Json, NGINX, &[]),
        def(
            "shardloop http::ws",
            Kind::WebSocket,
            "examples/http_hello",
            &one,
        ),
        def(
            "tokio-tungstenite, tokio current-thread",
            Kind::WebSocket,
            "peer_tungstenite",
            &[],
        ),
        def(
            "shardloop gateway (async tasks, ClientStream)",
            Kind::Gateway,
            "examples/gateway",
            &one,
        ),
        def(
            "tokio gateway (current-thread, pooled client)",
            Kind::Gateway,
            "peer_gateway_tokio",
            &[],
        ),
    ]
}

pub(crate) struct Scenario {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) size: usize,
    pub(crate) connections: usize,
    pub(crate) pipeline: usize,
    /// New connection after this many responses (handshake cost).
    pub(crate) reconnect_every: Option<u64>,
}

pub(crate) fn tls_scenarios() -> Vec<Scenario> {
    let sc = |name: &str, kind, size, pipeline, reconnect_every| Scenario {
        name: name.into(),
        kind,
        size,
        connections: 64,
        pipeline,
        reconnect_every,
    };
    vec![
        sc(
            "TLS echo 64 B, 64 conns, pipeline 1",
            Kind::Echo,
            64,
            1,
            None,
        ),
        sc(
            "TLS echo 4096 B, 64 conns, pipeline 16",
            Kind::Echo,
            4096,
            16,
            None,
        ),
        sc(
            "HTTPS keep-alive, 64 conns, pipeline 1",
            Kind::Http,
            0,
            1,
            None,
        ),
        sc(
            "TLS handshakes: HTTPS, a new connection per request, 64 conns",
            Kind::Http,
            0,
            1,
            Some(1),
        ),
    ]
}

pub(crate) fn scenarios(quick: bool) -> Vec<Scenario> {
    let mut v = Vec::new();
    for &size in &[64usize, 4096] {
        for &connections in &[64usize, 1000] {
            for &pipeline in &[1usize, 16] {
                v.push(Scenario {
                    name: format!("echo {size} B, {connections} conns, pipeline {pipeline}"),
                    kind: Kind::Echo,
                    size,
                    connections,
                    pipeline,
                    reconnect_every: None,
                });
            }
        }
    }
    if quick {
        v.truncate(1);
    }
    v.push(Scenario {
        name: "HTTP plaintext, 64 conns, pipeline 1".into(),
        kind: Kind::Http,
        size: 0,
        connections: 64,
        pipeline: 1,
        reconnect_every: None,
    });
    v.push(Scenario {
        name: "HTTP churn: Connection: close, a new connection per request, 64 conns".into(),
        kind: Kind::Http,
        size: 0,
        connections: 64,
        pipeline: 1,
        reconnect_every: Some(1),
    });
    if !quick {
        for (name, kind, pipeline) in [
            ("HTTP plaintext, 64 conns, pipeline 16", Kind::Http, 16),
            ("HTTP JSON, 64 conns, pipeline 1", Kind::Json, 1),
            ("HTTP JSON, 64 conns, pipeline 16", Kind::Json, 16),
        ] {
            v.push(Scenario {
                name: name.into(),
                kind,
                size: 0,
                connections: 64,
                pipeline,
                reconnect_every: None,
            });
        }
    }
    v.push(Scenario {
        name: "HTTP 1 MiB responses, 64 conns, pipeline 1".into(),
        kind: Kind::Big,
        size: 0,
        connections: 64,
        pipeline: 1,
        reconnect_every: None,
    });
    v.push(Scenario {
        name: "WebSocket echo 64 B messages, 64 conns, 1 in flight each".into(),
        kind: Kind::WebSocket,
        size: 64,
        connections: 64,
        pipeline: 1,
        reconnect_every: None,
    });
    if !quick {
        v.push(Scenario {
            name: "gateway GET /key (resp_kv backend), 64 conns, pipeline 1".into(),
            kind: Kind::Gateway,
            size: 0,
            connections: 64,
            pipeline: 1,
            reconnect_every: None,
        });
    }
    v
}
