//! Message bodies.

use bytes::Bytes;

/// The body of a request or a response: bytes held whole (a request's
/// body is read completely, up to `Limits::max_body`, before its handler
/// runs). Cloning shares the bytes.
///
/// ```
/// use shardloop::http::Body;
/// let b = Body::from("Hello, World!");
/// assert_eq!(b.len(), 13);
/// assert_eq!(b.as_bytes(), b"Hello, World!");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    bytes: Bytes,
}

impl Body {
    /// No body.
    pub fn empty() -> Self {
        Body::default()
    }

    /// The body's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The body's bytes, shared.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an empty body.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body { bytes }
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body {
            bytes: Bytes::from_static(s.as_bytes()),
        }
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Body {
            bytes: Bytes::from_static(s),
        }
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Body {
            bytes: Bytes::from(s),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body {
            bytes: Bytes::from(v),
        }
    }
}
