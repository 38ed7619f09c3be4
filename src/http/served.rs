//! What requests go to: one state and the router built on it, replaced
//! whole when a read-only process swaps its dataset. Each request takes
//! the router once, as it arrives, so it finishes on the data it began
//! with, and the old data closes when its last request is done.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;

use super::AppState;

struct Served {
    state: AppState,
    router: Router,
}

#[derive(Clone)]
pub struct Routes(Arc<ArcSwap<Served>>);

impl Routes {
    pub fn new(state: AppState, router: Router) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(Served { state, router })))
    }

    /// The router a request that arrives now goes to.
    pub fn router(&self) -> Router {
        self.0.load().router.clone()
    }

    /// The state requests that arrive now are served from.
    pub fn state(&self) -> AppState {
        self.0.load().state.clone()
    }

    /// From now on requests go to `router` (built on `state`); returns the
    /// state they went to before. Requests already running keep theirs.
    pub fn replace(&self, state: AppState, router: Router) -> AppState {
        let old = self.0.swap(Arc::new(Served { state, router }));
        old.state.clone()
    }
}
