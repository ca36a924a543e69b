//! Watch streams: the store's blocking `Watch` on a thread of its own, feeding a bounded channel that
//! the response body reads. The thread ends within a second of the client going away (the channel
//! closes) or of the server shutting down.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use hyper::body::Frame;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::App;
use super::status::ApiError;
use crate::store::{Event, Revision, Watch};

/// A BOOKMARK is sent after this long without events.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);
/// How often the watch thread looks up from waiting, to notice a closed stream or a shutdown.
const POLL: Duration = Duration::from_millis(500);
/// Events buffered between the watch thread and the connection.
const BUFFER: usize = 64;
/// A client that reads nothing for this long while events wait is cut off.
const STALLED: Duration = Duration::from_secs(60);
/// Most watch streams open at once; more are refused with 503 (each holds a thread and a connection
/// to the store).
pub const MAX_WATCHES: i64 = 512;

/// The response body of a watch: NDJSON lines from the channel. Dropping it (the client went away,
/// the connection closed) closes the channel, which stops the thread.
pub struct WatchBody {
    rx: mpsc::Receiver<Bytes>,
    app: Arc<App>,
}

impl Drop for WatchBody {
    fn drop(&mut self) {
        self.app.metrics.watch_closed();
    }
}

impl hyper::body::Body for WatchBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.rx.poll_recv(cx).map(|line| line.map(|l| Ok(Frame::data(l))))
    }
}

/// Starts the thread that follows `watch` and returns the body that streams what it sends.
pub fn start(app: Arc<App>, watch: Box<dyn Watch>, after: Revision) -> std::io::Result<WatchBody> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let thread_app = app.clone();
    std::thread::Builder::new()
        .name("meshctl-watch".to_string())
        .spawn(move || follow(&thread_app, watch, after, &tx))?;
    app.metrics.watch_opened();
    Ok(WatchBody { rx, app })
}

/// One NDJSON line.
fn line(value: &serde_json::Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

fn event_line(event: &Event) -> Bytes {
    line(&json!({ "type": event.kind, "object": event.object }))
}

fn bookmark_line(revision: Revision) -> Bytes {
    line(&json!({
        "type": "BOOKMARK",
        "object": { "metadata": { "resourceVersion": revision.to_string() } },
    }))
}

/// A failure in mid-stream, as Kubernetes reports it: an ERROR event whose object is a Status. The
/// stream ends after it.
fn error_line(e: ApiError) -> Bytes {
    line(&json!({ "type": "ERROR", "object": e.to_json() }))
}

/// Sends one line, waiting while the client is slow. False when the stream should end: the receiver
/// is gone, the server is shutting down, or the client has read nothing for `STALLED`.
fn send(app: &App, tx: &mpsc::Sender<Bytes>, mut item: Bytes) -> bool {
    let since = Instant::now();
    loop {
        match tx.try_send(item) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if app.shutting_down.load(Ordering::SeqCst) || since.elapsed() >= STALLED {
                    return false;
                }
                item = back;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn follow(app: &App, mut watch: Box<dyn Watch>, after: Revision, tx: &mpsc::Sender<Bytes>) {
    let mut last = after;
    let mut idle_since = Instant::now();
    loop {
        if tx.is_closed() || app.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        match watch.next(POLL) {
            Ok(Some(event)) => {
                last = last.max(event.revision);
                idle_since = Instant::now();
                if !send(app, tx, event_line(&event)) {
                    return;
                }
            }
            Ok(None) if idle_since.elapsed() >= BOOKMARK_INTERVAL => {
                // The revision is read first, then the watch is drained once more: every event up to
                // that revision has then been sent, so a client that resumes from the bookmark misses
                // nothing.
                let current = match app.store.revision() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = send(app, tx, error_line(ApiError::from_store(e)));
                        return;
                    }
                };
                match watch.next(Duration::ZERO) {
                    Ok(Some(event)) => {
                        last = last.max(event.revision);
                        idle_since = Instant::now();
                        if !send(app, tx, event_line(&event)) {
                            return;
                        }
                    }
                    Ok(None) => {
                        idle_since = Instant::now();
                        if !send(app, tx, bookmark_line(current.max(last))) {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = send(app, tx, error_line(ApiError::from_store(e)));
                        return;
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                let _ = send(app, tx, error_line(ApiError::from_store(e)));
                return;
            }
        }
    }
}
