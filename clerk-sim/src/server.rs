//! The HTTP server: a plain hyper HTTP/1 accept loop around the axum router, so that a
//! route can have its connection closed without an answer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use axum::middleware;
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::api::{self, DropConnection};
use crate::control;
use crate::sessions_api;
use crate::state::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/actor_tokens", post(api::create).fallback(api::not_found))
        .route(
            "/actor_tokens/{actor_token_id}/revoke",
            post(api::revoke).fallback(api::not_found),
        )
        .route(
            "/sessions",
            get(sessions_api::list).fallback(api::not_found),
        )
        .route(
            "/sessions/{session_id}/revoke",
            post(sessions_api::revoke).fallback(api::not_found),
        )
        .fallback(api::not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), api::guard));
    Router::new()
        .nest("/v1", api)
        .merge(control::router())
        .fallback(api::not_found)
        .with_state(shared)
}

/// Returned to hyper in place of a response: hyper then closes the connection without
/// writing anything.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose by the simulator")]
struct Dropped;

pub(crate) async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let router = router.clone();
                    async move {
                        let response = match router.oneshot(request).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        };
                        if response.extensions().get::<DropConnection>().is_some() {
                            Err(Dropped)
                        } else {
                            Ok::<_, Dropped>(response)
                        }
                    }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    // Idle keep-alive connections close at once; answers under way get a few seconds.
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 5 s; closing them");
    }
}
