//! The chat's web side: the page at `/`, and the WebSocket at `/ws`
//! through which browsers join the same room as the line clients.

use super::{broadcast, Room};
use shardloop::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use shardloop::http::ws::{close_code, Message, WebSocket, WsConn, WsOptions};
use shardloop::http::{Body, HeaderValue, HttpServer, Request, Response, Router};

const PAGE: &str = include_str!("page.html");

/// The HTTP server of the web side: lines and frames are capped alike.
pub fn server(max_line: usize, max_backlog: usize) -> HttpServer {
    let opts = WsOptions {
        max_message: max_line,
        max_frame: max_line as u64,
        protocols: vec!["chat".into()],
        ..WsOptions::default()
    };
    let app = Router::new()
        .get("/", |_: &Request<Body>| {
            let mut r = Response::new(Body::from(PAGE));
            let h = r.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        })
        .websocket("/ws", opts, move |_req| WebMember {
            name: String::new(),
            max_backlog,
        });
    HttpServer::new(app)
}

/// A browser in the room.
struct WebMember {
    name: String,
    /// Unsent output it may accumulate before it is dropped.
    max_backlog: usize,
}

impl WebSocket for WebMember {
    fn on_open(&mut self, ws: &mut WsConn<'_, '_>) {
        self.name = format!("web{}", ws.id());
        let id = ws.id();
        ws.shard().service::<Room>().sockets.insert(id);
        ws.send(format!("* welcome {}", self.name));
    }

    fn on_message(&mut self, ws: &mut WsConn<'_, '_>, msg: Message) {
        let Some(text) = msg.as_text() else {
            return ws.close(close_code::UNSUPPORTED, "text only");
        };
        if let Some(nick) = text.strip_prefix("/nick ") {
            self.name = nick.trim().to_string();
            return;
        }
        let from = ws.id();
        if !broadcast(ws.shard(), from, &self.name, text) {
            ws.send_text("* server busy: your line did not reach everyone");
        }
    }

    fn on_push(&mut self, ws: &mut WsConn<'_, '_>, msg: Message) {
        if ws.buffered() + msg.len() > self.max_backlog {
            // A member that does not read would make the server hold every
            // line for it.
            tracing::info!(member = %ws.id(), backlog = ws.buffered(), "dropping a browser that does not read");
            return ws.close(close_code::POLICY, "you are not reading");
        }
        ws.send(msg);
    }

    fn on_close(&mut self, ws: &mut WsConn<'_, '_>, _code: u16, _reason: &str) {
        let id = ws.id();
        ws.shard().service::<Room>().sockets.remove(&id);
    }
}
