//! WebSocket messages: text (UTF-8, checked) or binary, both sharing
//! their bytes (a message received is a slice of the read buffer; one
//! broadcast to many connections is cloned without a copy).

use bytes::Bytes;
use std::fmt;
use std::ops::Deref;

/// UTF-8 text over shared bytes.
///
/// ```
/// use shardloop::http::ws::Text;
/// let t = Text::from("héllo");
/// assert_eq!(t.as_str(), "héllo");
/// assert_eq!(t.len(), 6);
/// assert!(Text::try_from(bytes::Bytes::from_static(b"\xff")).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Text(Bytes);

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Every constructor checks or starts from a `str`.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The UTF-8 bytes, shared.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Bytes already checked by the caller (the receive path validates
    /// as fragments arrive).
    pub(crate) fn from_checked(b: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&b).is_ok());
        Text(b)
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Bytes::from(s))
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text(Bytes::from_static(s.as_bytes()))
    }
}

impl TryFrom<Bytes> for Text {
    type Error = std::str::Utf8Error;
    fn try_from(b: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&b)?;
        Ok(Text(b))
    }
}

/// A WebSocket message.
///
/// ```
/// use shardloop::http::ws::Message;
/// let m = Message::from("hi");
/// assert_eq!(m.as_text(), Some("hi"));
/// assert_eq!(Message::from(vec![1u8, 2]).as_bytes(), &[1, 2]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (UTF-8).
    Text(Text),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The text, for a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(t.as_str()),
            Message::Binary(_) => None,
        }
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&'static str> for Message {
    fn from(s: &'static str) -> Self {
        Message::Text(s.into())
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s.into())
    }
}

impl From<Text> for Message {
    fn from(t: Text) -> Self {
        Message::Text(t)
    }
}

impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Self {
        Message::Binary(v.into())
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}
