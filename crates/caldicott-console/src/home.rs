//! The home page: the organisation's security posture at a glance.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use crate::web::{self, Layout};
use crate::{ConsoleState, tri};

pub fn routes() -> Router<Arc<ConsoleState>> {
    Router::new().route("/", get(home))
}

#[derive(askama::Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
}

async fn home(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    let viewer = tri!(web::viewer(&state, &headers, web::peer(&ext)).await);
    web::render(
        StatusCode::OK,
        &HomePage {
            layout: Layout::new(&viewer, "Home", "home"),
        },
    )
}
