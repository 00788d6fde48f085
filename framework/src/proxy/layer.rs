//! The PROXY header as a layer: reads the header, then passes everything
//! through (or to the layer inside it, TLS).

use super::header::{parse, Parsed, V2_MAX};
use crate::api::ProxyHeader;
use crate::api::TlsInfo;
use crate::api::{CloseReason, Settings};
use crate::reactor::{Layer, WireSink};
use std::time::Duration;

pub(crate) struct ProxyLayer {
    /// Header bytes received so far (at most one header's worth).
    buf: Vec<u8>,
    /// `buf` cannot hold a complete header below this length.
    need: usize,
    header: Option<ProxyHeader>,
    /// The peer is not a trusted proxy: its header is read, not believed.
    ignore: bool,
    inner: Option<Box<dyn Layer>>,
}

impl ProxyLayer {
    /// Reads a header and believes it (`ignore`: reads it and keeps the
    /// socket's addresses, for a peer outside the trusted networks).
    pub(crate) fn new(inner: Option<Box<dyn Layer>>, ignore: bool) -> Self {
        ProxyLayer {
            ignore,
            buf: Vec::new(),
            need: 1,
            header: None,
            inner,
        }
    }

    fn pass_on(
        &mut self,
        rest: &[u8],
        app: &mut Vec<u8>,
        wire: &mut WireSink<'_>,
    ) -> Result<(), CloseReason> {
        match self.inner.as_mut() {
            Some(inner) => inner.ingest(rest, app, wire),
            None => {
                app.extend_from_slice(rest);
                Ok(())
            }
        }
    }
}

impl Layer for ProxyLayer {
    fn ingest(
        &mut self,
        input: &[u8],
        app: &mut Vec<u8>,
        wire: &mut WireSink<'_>,
    ) -> Result<(), CloseReason> {
        if self.header.is_some() {
            return self.pass_on(input, app, wire);
        }
        // The buffer holds at most one header's worth; bytes past the header
        // (taken along) are the stream's and are passed on.
        let mut input = input;
        while !input.is_empty() {
            let take = input.len().min(V2_MAX - self.buf.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() < self.need {
                continue;
            }
            match parse(&self.buf) {
                Ok(Parsed::Need(n)) => self.need = n,
                Ok(Parsed::Done(header, len)) => {
                    self.header = Some(header);
                    let mut rest = self.buf.split_off(len);
                    rest.extend_from_slice(input);
                    self.buf = Vec::new();
                    return self.pass_on(&rest, app, wire);
                }
                Err(e) => return Err(CloseReason::ProtocolError(e.to_string())),
            }
        }
        Ok(())
    }

    fn encode(&mut self, data: &[u8], wire: &mut WireSink<'_>) -> Result<(), CloseReason> {
        match self.inner.as_mut() {
            Some(inner) => inner.encode(data, wire),
            None => {
                use std::io::Write;
                let _ = wire.write(data);
                Ok(())
            }
        }
    }

    fn close_output(&mut self, wire: &mut WireSink<'_>) -> bool {
        self.inner.as_mut().is_some_and(|i| i.close_output(wire))
    }

    fn start(&mut self, _wire: &mut WireSink<'_>) {
        // The server side speaks after the header; nothing to send first.
    }

    fn is_ready(&self) -> bool {
        self.header.is_some() && self.inner.as_ref().is_none_or(|i| i.is_ready())
    }

    fn peer_finished(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.peer_finished())
    }

    fn is_tls(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.is_tls())
    }

    fn clean_eof(&self) -> bool {
        self.inner.as_ref().is_none_or(|i| i.clean_eof())
    }

    fn tls_info(&self) -> Option<TlsInfo> {
        self.inner.as_ref().and_then(|i| i.tls_info())
    }

    fn eof_reason(&self) -> CloseReason {
        match (&self.header, &self.inner) {
            (Some(_), Some(inner)) => inner.eof_reason(),
            _ => CloseReason::ProtocolError(
                "PROXY protocol: the peer closed before the header ended".into(),
            ),
        }
    }

    fn deadline(&self, settings: &Settings) -> Duration {
        let inner = self
            .inner
            .as_ref()
            .map_or(Duration::ZERO, |i| i.deadline(settings));
        settings.proxy_header_timeout.saturating_add(inner)
    }

    fn timeout_reason(&self) -> CloseReason {
        match (&self.header, &self.inner) {
            (Some(_), Some(inner)) => inner.timeout_reason(),
            _ => CloseReason::ProtocolError("PROXY protocol: no complete header in time".into()),
        }
    }

    fn proxy_header(&self) -> Option<&ProxyHeader> {
        self.header.as_ref().filter(|_| !self.ignore)
    }

    fn proxy_untrusted(&self) -> bool {
        self.ignore && self.header.is_some()
    }

    fn may_change_peer(&self) -> bool {
        !self.ignore
    }
}
