//! Why an endpoint description could not be read.

/// A malformed endpoint description; names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad endpoint {input:?}: {field}: {reason}")]
pub struct EndpointError {
    /// The description as given.
    pub input: String,
    /// The field at fault (`type`, `port`, `interface`, …).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}
