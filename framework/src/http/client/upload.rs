//! Requests whose body is produced piece by piece while it is sent (an
//! upload of unknown size, a proxied stream): chunked on HTTP/1.1 unless
//! the request states its length, DATA frames within the stream's window
//! on HTTP/2; the producer waits while the connection is backed up.

use super::exchange::{self, encode_request, Failed};
use super::{h2, Client, ClientError, Connection, Origin, ResponseBody};
use crate::http::{Request, Response};
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use std::future::Future;

impl Client {
    /// Sends `req` with a body `next` produces piece by piece (`None`:
    /// the end), then returns at the response's head, like
    /// [`send`](Client::send). The body goes out chunked on HTTP/1.1 — or
    /// as is, if `req` has a `Content-Length` (a body of another length
    /// fails with [`ClientError::Protocol`]) — and as DATA frames within
    /// the stream's flow-control window on HTTP/2. `next` is not called
    /// again while the connection's output is above its high-water mark,
    /// so a slow server holds the producer back. Not retried (the body
    /// cannot be produced twice).
    ///
    /// ```no_run
    /// use bytes::Bytes;
    /// use shardloop::http::client::{Client, ClientOptions};
    /// use shardloop::http::Request;
    /// # async fn demo() -> Result<(), shardloop::http::client::ClientError> {
    /// let client = Client::new(ClientOptions::default());
    /// let req = Request::post("http://127.0.0.1:8080/upload").body(()).unwrap();
    /// let mut left = 1000; // a thousand pieces of 64 KiB, none kept
    /// let resp = client
    ///     .send_streaming(req, || {
    ///         left -= 1;
    ///         let piece = (left >= 0).then(|| Bytes::from(vec![0u8; 64 << 10]));
    ///         async move { piece }
    ///     })
    ///     .await?;
    /// # let _ = resp; Ok(()) }
    /// ```
    pub async fn send_streaming<F, Fut>(
        &self,
        req: Request<()>,
        mut next: F,
    ) -> Result<Response<ResponseBody>, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<Bytes>>,
    {
        let origin = Origin::of(req.uri())?;
        let opts = &self.shared.opts;
        let within = opts.response_timeout;
        let mut conn = match self.connection(&origin).await? {
            Connection::H2(send) => return h2::upload(send, &req, next, opts).await,
            Connection::H1(conn) => conn,
        };
        let length = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        conn.write_all(&encode_request(&req, &origin, length))
            .await?;
        let mut sent = 0u64;
        while let Some(piece) = next().await {
            if piece.is_empty() {
                continue;
            }
            sent += piece.len() as u64;
            match length {
                Some(n) if sent > n => {
                    return Err(ClientError::Protocol("body longer than its Content-Length"))
                }
                Some(_) => conn.write_all(&piece).await?,
                None => {
                    conn.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .await?;
                    conn.write_all(&piece).await?;
                    conn.write_all(b"\r\n").await?;
                }
            }
        }
        match length {
            Some(n) if sent != n => {
                return Err(ClientError::Protocol(
                    "body shorter than its Content-Length",
                ))
            }
            Some(_) => {}
            None => conn.write_all(b"0\r\n\r\n").await?,
        }
        let head_only = req.method() == http::Method::HEAD;
        let head = crate::task::timeout(within, exchange::read_head(&mut conn, head_only, opts))
            .await
            .map_err(|_| ClientError::Timeout(within))?
            .map_err(|Failed { error, .. }| error)?;
        Ok(self.with_body(conn, head))
    }
}
