//! The PROXY side of `Conn`: the header a connection started with.

use crate::api::ProxyHeader;
use crate::reactor::{Conn, Protocol};

impl<P: Protocol> Conn<'_, P> {
    /// The PROXY protocol header this connection started with (on a
    /// listener with `proxy_protocol`); `peer_addr` and `local_addr`
    /// already reflect its addresses.
    pub fn proxy_header(&self) -> Option<ProxyHeader> {
        self.layer().and_then(|l| l.proxy_header()).cloned()
    }
}
