//! What a TLS handshake negotiated (the layer that fills it in is in tls/).

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
    /// How long the handshake took, from the layer's start (the TCP
    /// connection up) to its last message.
    pub handshake_time: Option<std::time::Duration>,
    /// The handshake resumed an earlier session (a TLS 1.3 ticket or a
    /// TLS 1.2 session id) rather than doing a full one.
    pub resumed: bool,
}
