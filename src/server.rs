//! The HTTP server: accepting connections, their limits, graceful shutdown.
//!
//! [`run`] takes a listener that is already bound and a shutdown future, so
//! `main` binds the configured address and tests bind `127.0.0.1:0`. Each
//! connection is served by hyper's HTTP/1 implementation on its own task with
//! a header read timeout; a semaphore caps how many are served at once, and
//! connections beyond the cap wait in the kernel's listen backlog.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::ServerLimits;
use crate::routes::{self, App};

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying
/// again, so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting and gives in-flight requests up to `limits.shutdown_timeout` to
/// finish. Returns whether every connection closed in time.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    limits: &ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // A client may send its request and close its sending side at once;
        // it still gets the answer.
        .half_close(true)
        .keep_alive(true);

    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };

        // Small request/response exchanges: send each as soon as it is ready.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(routes::handle(app, req).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: no longer accepting, waiting for in-flight requests"
    );
    // Connections first, then work that outlived its request (a setup or an
    // upload whose client got a timeout or hung up), within one deadline.
    let drained = async {
        graceful.shutdown().await;
        tracing::info!(still_working = app.work.len(), "all connections closed");
        app.work.close();
        app.work.wait().await;
    };
    tokio::select! {
        () = drained => true,
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            tracing::warn!(
                work = app.work.len(),
                timeout_ms = limits.shutdown_timeout.as_millis() as u64,
                "requests or their work still running at the shutdown deadline; stopping them"
            );
            false
        }
    }
}
