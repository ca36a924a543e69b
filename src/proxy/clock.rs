//! The timers of one client connection: how long it may wait for a request head, and the deadline of
//! the request it carries (a rule's `httpReqTimeout`).
//!
//! Timers set and cancelled for every request cost a routed request dearly: hyper's header timeout
//! alone was 1,325 of its 24,850 user-space instructions (`bench/route-instructions.sh`), and the
//! request's own timeout came on top. Here one timer per connection, the watchdog, serves both,
//! lazily: it stays set for the earliest time that may matter, and when it fires it looks at what is
//! due now and sets itself again. A request's
//! deadline is two stores; only a deadline earlier than the one the watchdog is set for moves the
//! timer. Most requests end long before their deadline, and requests that follow each other have
//! deadlines later than the one before, so the timer moves about once per timeout period.
//!
//! A connection carries one request at a time (HTTP/1), and the watchdog, the request and its
//! deadline run in the connection's task, so there is one deadline at a time.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;

pub struct ConnClock {
    epoch: Instant,
    head_timeout: Duration,
    /// Nanoseconds from `epoch` to the start of the wait for a head, plus one; 0 while a request is
    /// handled.
    waiting_since: AtomicU64,
    /// Nanoseconds from `epoch` to the current request's deadline, plus one; 0 when there is none.
    request_due: AtomicU64,
    request_fired: AtomicBool,
    request: AtomicWaker,
    /// Nanoseconds from `epoch` to the time the watchdog's timer is set for, plus one.
    armed: AtomicU64,
    watchdog: AtomicWaker,
}

impl ConnClock {
    /// A clock for a connection accepted now: it waits `head_timeout` at most for each request head.
    pub fn new(head_timeout: Duration) -> ConnClock {
        ConnClock {
            epoch: Instant::now(),
            head_timeout,
            waiting_since: AtomicU64::new(1),
            request_due: AtomicU64::new(0),
            request_fired: AtomicBool::new(false),
            request: AtomicWaker::new(),
            armed: AtomicU64::new(u64::MAX),
            watchdog: AtomicWaker::new(),
        }
    }

    fn tick(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn instant(&self, tick: u64) -> Instant {
        self.epoch + Duration::from_nanos(tick.saturating_sub(1))
    }

    /// A request head came whole: no wait until its answer is over.
    pub fn busy(&self) {
        self.waiting_since.store(0, Ordering::Relaxed);
    }

    /// The answer is over: the wait for the next head starts.
    pub fn start_waiting(&self) {
        self.waiting_since.store(self.tick(Instant::now()), Ordering::Relaxed);
    }

    /// When the current wait for a head runs out; None while a request is handled.
    fn head_due(&self) -> Option<Instant> {
        match self.waiting_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(self.instant(since) + self.head_timeout),
        }
    }

    /// Sets the current request's deadline: the returned future ends at `at`, or never if it is
    /// dropped first (dropping it clears the deadline).
    pub fn deadline(&self, at: Instant) -> RequestDeadline<'_> {
        let tick = self.tick(at);
        self.request_fired.store(false, Ordering::Relaxed);
        self.request_due.store(tick, Ordering::Release);
        if tick < self.armed.load(Ordering::Acquire) {
            // The watchdog is set for later than this: it sets itself again.
            self.watchdog.wake();
        }
        RequestDeadline { clock: self }
    }

    /// The watchdog: drives both timers, and ends when the wait for a request head ran out (the
    /// connection is then to be closed).
    pub fn watchdog(&self) -> Watchdog<'_> {
        Watchdog {
            clock: self,
            sleep: Box::pin(tokio::time::sleep_until(Instant::now().into())),
            set_for: None,
        }
    }
}

/// The end of the current request's time: see [`ConnClock::deadline`].
pub struct RequestDeadline<'a> {
    clock: &'a ConnClock,
}

impl Future for RequestDeadline<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let clock = self.clock;
        if clock.request_fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        clock.request.register(cx.waker());
        if clock.request_fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for RequestDeadline<'_> {
    fn drop(&mut self) {
        self.clock.request_due.store(0, Ordering::Release);
    }
}

/// See [`ConnClock::watchdog`]. Polled only when its timer fired or a request's deadline came
/// earlier (it is meant to sit in a `Quiet`).
pub struct Watchdog<'a> {
    clock: &'a ConnClock,
    sleep: Pin<Box<tokio::time::Sleep>>,
    set_for: Option<Instant>,
}

impl Future for Watchdog<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let clock = this.clock;
        clock.watchdog.register(cx.waker());
        loop {
            let now = Instant::now();
            // Look again in a head timeout's time when nothing is due sooner.
            let mut next = now + clock.head_timeout;
            let due = clock.request_due.load(Ordering::Acquire);
            if due != 0 {
                let at = clock.instant(due);
                if at <= now {
                    // Once per deadline: a later request's deadline has another value.
                    if clock
                        .request_due
                        .compare_exchange(due, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        clock.request_fired.store(true, Ordering::Release);
                        clock.request.wake();
                    }
                } else {
                    next = next.min(at);
                }
            }
            match clock.head_due() {
                Some(at) if at <= now => return Poll::Ready(()),
                Some(at) => next = next.min(at),
                None => {}
            }
            if this.set_for != Some(next) {
                this.sleep.as_mut().reset(next.into());
                this.set_for = Some(next);
                clock.armed.store(clock.tick(next), Ordering::Release);
            }
            match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::quiet::Quiet;

    /// Runs `f` beside the clock's watchdog (as a connection does); None if the watchdog ended first.
    async fn beside<T>(clock: &ConnClock, f: impl Future<Output = T>) -> Option<T> {
        let mut watchdog = Quiet::new(clock.watchdog());
        tokio::pin!(f);
        tokio::select! {
            biased;
            out = &mut f => Some(out),
            () = &mut watchdog => None,
        }
    }

    #[tokio::test]
    async fn a_request_deadline_ends_its_future_on_time_and_a_dropped_one_never_fires() {
        let clock = ConnClock::new(Duration::from_secs(10));
        clock.busy();
        let out = beside(&clock, async {
            // Ended first: its deadline is cleared, and the next one is not fired by it.
            drop(clock.deadline(Instant::now() + Duration::from_millis(50)));
            let started = Instant::now();
            let at = started + Duration::from_millis(200);
            // Far later than the watchdog's first setting, then earlier: the watchdog moves.
            clock.deadline(at).await;
            let fired = Instant::now();
            // A deadline that does not come while something else runs is no harm.
            let quick = clock.deadline(Instant::now() + Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(quick);
            (started, at, fired)
        })
        .await;
        let (started, at, fired) = out.expect("the watchdog ended while a request was handled");
        assert!(fired >= at, "fired {:?} before its deadline", at - fired);
        assert!(
            fired - started < Duration::from_secs(5),
            "fired after {:?}",
            fired - started
        );
    }

    #[tokio::test]
    async fn deadlines_earlier_than_the_watchdogs_timer_move_it() {
        let clock = ConnClock::new(Duration::from_secs(30));
        clock.busy();
        let out = beside(&clock, async {
            // Deadlines that follow each other, each earlier than the head timeout.
            for ms in [300u64, 40, 80] {
                let started = Instant::now();
                clock.deadline(started + Duration::from_millis(ms)).await;
                assert!(started.elapsed() >= Duration::from_millis(ms));
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "{ms} ms took {:?}",
                    started.elapsed()
                );
            }
        })
        .await;
        assert!(out.is_some());
    }

    #[tokio::test]
    async fn the_wait_for_a_head_ends_the_watchdog_but_not_while_a_request_is_handled() {
        let clock = ConnClock::new(Duration::from_millis(100));
        // Busy for three head timeouts: the watchdog does not end.
        clock.busy();
        let handled = beside(&clock, tokio::time::sleep(Duration::from_millis(300))).await;
        assert!(handled.is_some());
        // Then waiting: it ends a head timeout later.
        clock.start_waiting();
        let started = Instant::now();
        let waited = beside(&clock, tokio::time::sleep(Duration::from_secs(10))).await;
        assert!(waited.is_none());
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
