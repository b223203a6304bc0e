//! The API's accept loop: HTTP/1.1 on hyper, with limits axum's `serve` does not set.
//!
//! - **Header timeout**: a request's headers must arrive within `header_timeout` (hyper's
//!   `header_read_timeout`), or the connection is closed. Hyper runs this timer from the
//!   moment a connection waits for a request, so a kept-alive connection idle between
//!   requests is closed after it too.
//! - **Body timeout**: enforced where bodies are read (`submit`), which answers 408 and closes.
//! - **Idle timeout**: a connection that moves no byte in either direction for `idle_timeout`
//!   is closed, whatever state it is in (a client that stopped reading a response, say).
//!   Event streams send a keep-alive every 10 s and `?wait=commit` answers within
//!   `wait_timeout`, both below the idle timeout (the configuration checks it).
//! - **Connections**: at most `max_connections` open; more are closed as they are accepted.
//!
//! On shutdown the listener closes, open connections finish their current request (bounded by
//! a grace period), then the rest are dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// The connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Headers must arrive within this.
    pub header_timeout: Duration,
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
}

/// How long open connections may finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A TCP stream that remembers when a byte last moved.
struct Tracked {
    inner: TcpStream,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last read or write that moved a byte.
    last: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut stop = shutdown.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tracing::warn!(error = %e, "API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                conns.spawn(connection(stream, app.clone(), limits, slot, shutdown.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
    Ok(())
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    _slot: tokio::sync::OwnedSemaphorePermit,
    mut shutdown: watch::Receiver<bool>,
) {
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        epoch,
        last: last.clone(),
    });
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let idle_until =
            epoch + Duration::from_millis(last.load(Ordering::Relaxed)) + limits.idle_timeout;
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "API connection ended");
                }
                return;
            }
            _ = tokio::time::sleep_until(idle_until.into()) => {
                let silent = epoch.elapsed()
                    .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if silent >= limits.idle_timeout {
                    tracing::debug!("closing an idle API connection");
                    return;
                }
            }
            _ = stopped(&mut shutdown), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
