//! (Being written: see the module list in `lib.rs`.)

use std::sync::Arc;

use axum::Router;

use crate::ConsoleState;

pub fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
}
