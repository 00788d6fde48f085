//! What a TLS handshake negotiated.

/// What a connection's TLS handshake negotiated
/// ([`Conn::tls_info`](crate::Conn::tls_info)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The ALPN protocol chosen (`b"h2"`, `b"http/1.1"`), if any.
    pub alpn: Option<Vec<u8>>,
    /// The server name the client asked for (SNI). On the client side, the
    /// name it asked for.
    pub server_name: Option<String>,
    /// The peer's certificate chain, DER, leaf first (empty when the peer
    /// sent none, e.g. a client without mTLS).
    pub peer_certificates: Vec<Vec<u8>>,
    /// `"TLSv1.3"` or `"TLSv1.2"`.
    pub protocol_version: String,
    /// The cipher suite, as IANA names it (`"TLS13_AES_128_GCM_SHA256"`).
    pub cipher_suite: String,
}

impl TlsInfo {
    pub(crate) fn of(conn: &rustls::Connection, server_name: Option<String>) -> Self {
        let server_name = match conn {
            rustls::Connection::Server(s) => s.server_name().map(str::to_string),
            rustls::Connection::Client(_) => server_name,
        };
        TlsInfo {
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name,
            peer_certificates: conn
                .peer_certificates()
                .map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect())
                .unwrap_or_default(),
            protocol_version: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
                Some(v) => format!("{v:?}"),
                None => String::new(),
            },
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
        }
    }
}
