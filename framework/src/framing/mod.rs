//! Framing: turning a byte stream into lines, length-prefixed frames or
//! netstrings. Decoders are pure and incremental ([`Decoder`]); [`Framed`]
//! adapts any of them into a [`Protocol`](crate::Protocol) that delivers
//! whole frames to a [`FrameProtocol`].

mod decoder;
#[cfg(test)]
mod decoder_tests;
mod framed;

pub use decoder::{
    Decoder, Frame, FrameError, LengthPrefixedDecoder, LineDecoder, NetstringDecoder, PrefixWidth,
    Recovery,
};
pub use framed::{
    FrameProtocol, Framed, FramedConn, LengthPrefixed, LineReceiver, NetstringReceiver,
};
