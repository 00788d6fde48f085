//! Outbound clients beyond a single connect: the reconnecting client.

pub mod reconnect;
