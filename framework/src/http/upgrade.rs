//! Handing an HTTP/1.1 connection over to a WebSocket: the 101 answer
//! leaves in request order, then the WebSocket reads what follows it.

use super::server::HttpConnection;
use super::ws::{Session, Upgrade};
use crate::Conn;

impl HttpConnection {
    /// A handler answered request `seq` with an upgrade: no more requests
    /// are read; the 101 goes out after every earlier answer, and the
    /// input after the handshake is kept for the WebSocket.
    pub(super) fn upgrade(&mut self, conn: &mut Conn<'_, Self>, seq: u64, up: Upgrade) {
        self.closing = true;
        self.upgrading = true;
        if self.nothing_owed() {
            conn.write_owned(up.head);
            return self.switch(conn, up.session);
        }
        self.owe(conn, seq, Some((up.head, None)), false, Some(up.session));
        self.write_ready(conn);
    }

    /// The 101 is written: the WebSocket takes the connection.
    pub(super) fn switch(&mut self, conn: &mut Conn<'_, Self>, session: Box<Session>) {
        self.upgrading = false;
        // HTTP's timers end here; the WebSocket has its own.
        self.keep_alive(conn, false);
        self.set_deadline(conn, None);
        if self.paused {
            self.paused = false;
            conn.resume_reading();
        }
        let ws = self.ws.insert(session);
        ws.open(conn);
        if !self.buf.is_empty() {
            ws.feed(&mut self.buf, conn);
        }
        if self.eof {
            ws.ended(conn);
            conn.close();
        }
    }

    /// The WebSocket this connection was upgraded to, if any (for the
    /// WebSocket's timers, which run with the connection's protocol).
    pub(crate) fn ws_session(&mut self) -> Option<&mut Session> {
        self.ws.as_deref_mut()
    }
}
