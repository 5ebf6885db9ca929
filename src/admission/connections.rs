//! Keeping the webhook's connections bounded: a connection that never sends its first request,
//! or goes quiet, is closed; past the connection cap, the connection idle the longest is shed
//! to make room. Without these, connections that finish the TLS handshake and then say nothing
//! hold file descriptors until every client is locked out.
//!
//! Activity is what the client sends: bytes read from it (an HTTP/2 ping counts, so a live API
//! server keeps its connections).

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The bounds on the webhook's connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long after the handshake the first request's bytes may take to arrive.
    pub first_request: Duration,
    /// How long a connection may stay silent between requests.
    pub idle: Duration,
    /// Connections open at once; past it, the one idle the longest is closed.
    pub max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(90),
            max: 1024,
        }
    }
}

/// When a connection last read a byte, and whether it has read any.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last read; `u64::MAX` until the first.
    last: AtomicU64,
    /// Told when the connection must close (shed).
    close: Notify,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        Activity {
            epoch,
            last: AtomicU64::new(u64::MAX),
            close: Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// When the connection last read, `None` before its first byte.
    fn last_read(&self) -> Option<Instant> {
        match self.last.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(self.epoch + Duration::from_millis(ms)),
        }
    }

    /// When the connection must have read again, under `limits`, counted from `opened`.
    pub fn deadline(&self, opened: Instant, limits: &Limits) -> Instant {
        match self.last_read() {
            None => opened + limits.first_request,
            Some(at) => at + limits.idle,
        }
    }

    /// Resolves when the connection is shed to make room for another.
    pub async fn shed(&self) {
        self.close.notified().await;
    }
}

/// The open connections, for the cap.
#[derive(Debug)]
pub struct Open {
    epoch: Instant,
    limits: Limits,
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, Arc<Activity>>>,
}

/// A connection's place among the open ones; leaving it (dropping) frees the place.
#[derive(Debug)]
pub struct Slot {
    open: Arc<Open>,
    id: u64,
    /// The connection's activity.
    pub activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Open {
    /// No connection open yet.
    pub fn new(limits: Limits) -> Self {
        Open {
            epoch: Instant::now(),
            limits,
            next: AtomicU64::new(0),
            live: Mutex::new(BTreeMap::new()),
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Take a place for a new connection; at the cap, the open connection idle the longest is
    /// told to close first.
    pub fn enter(self: &Arc<Self>) -> Slot {
        let activity = Arc::new(Activity::new(self.epoch));
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= self.limits.max {
            // Never read counts as idle since the epoch: those go first.
            let oldest = live
                .iter()
                .min_by_key(|(_, a)| a.last_read().unwrap_or(self.epoch))
                .map(|(id, a)| (*id, a.clone()));
            if let Some((old, a)) = oldest {
                live.remove(&old);
                a.close.notify_one();
                tracing::warn!(
                    max = self.limits.max,
                    "connection cap reached: the connection idle the longest is closed"
                );
            }
        }
        live.insert(id, activity.clone());
        Slot {
            open: self.clone(),
            id,
            activity,
        }
    }
}

/// An IO stream that records each read in its [`Activity`].
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    /// Track `inner`'s reads in `activity`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_connection_idle_the_longest_is_shed() {
        let open = Arc::new(Open::new(Limits {
            max: 2,
            ..Limits::default()
        }));
        let a = open.enter();
        let b = open.enter();
        b.activity.touch();
        let shed = a.activity.clone();
        let waiting = tokio::spawn(async move { shed.shed().await });
        tokio::task::yield_now().await;
        let _c = open.enter();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the silent connection is told to close")
            .unwrap();
        assert_eq!(open.live.lock().unwrap().len(), 2);
        drop(b);
        assert_eq!(open.live.lock().unwrap().len(), 1);
    }
}
