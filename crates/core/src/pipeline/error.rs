//! The pipeline's errors.

use crate::state::store::UpdateError;

/// Session state the shared store could not write (binding a session,
/// keeping a stream's unanswered requests). Shows the store's message as is.
#[derive(Debug)]
pub struct StateError(pub UpdateError);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StateError {}

impl From<UpdateError> for StateError {
    fn from(e: UpdateError) -> Self {
        StateError(e)
    }
}
