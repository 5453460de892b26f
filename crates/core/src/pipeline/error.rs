//! The pipeline's errors.

/// Session state the shared store could not read or write (binding a
/// session, keeping a stream's unanswered requests). Shows the store's
/// message as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

impl From<String> for StateError {
    fn from(s: String) -> Self {
        StateError(s)
    }
}
