//! Bytes in and out: addresses, the streams connections run over,
//! listening sockets, socket options, and the output queue.

mod addr;
mod listener;
mod resolve;
mod socket_options;
mod stream;
mod write_buf;

pub use addr::Addr;
pub(crate) use listener::{bind_tcp_with, bind_unix, is_transient_accept_error, Listener};
pub(crate) use resolve::interleave;
pub use resolve::{Resolve, SystemResolver};
pub use socket_options::{Keepalive, SocketOptions};
pub(crate) use stream::{Stream, VirtualStream};
pub(crate) use write_buf::{BufPool, WriteBuf};
