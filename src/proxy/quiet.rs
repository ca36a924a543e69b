//! A future that is polled only when it asked to be.
//!
//! A `select!` polls every branch each time any branch wakes its task. A branch that is rarely ready,
//! such as a shutdown signal or a watchdog timer beside a connection, then costs its whole poll (a
//! timer's state, a watch channel's version and notification list) every time the connection makes
//! progress: on a keep-alive connection that was a few hundred instructions per request.
//! [`Quiet`] gives its future a waker of its own, and polls it again only after that waker fired.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

/// Set by the inner future's waker, and passes the wake-up on to the task.
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// `inner`, polled on the first poll and then only after it woke its waker.
pub struct Quiet<F> {
    inner: Pin<Box<F>>,
    flag: Arc<Flag>,
    waker: Waker,
}

impl<F: Future> Quiet<F> {
    pub fn new(inner: F) -> Quiet<F> {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Quiet {
            inner: Box::pin(inner),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }
}

impl<F: Future> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // The task's waker first: a wake-up between the check and the poll below then wakes the task
        // again rather than being lost.
        this.flag.task.register(cx.waker());
        if !this.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.inner.as_mut().poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// A timer that counts its polls.
    struct Counted {
        polls: Arc<AtomicUsize>,
        sleep: Pin<Box<tokio::time::Sleep>>,
    }

    impl Future for Counted {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            self.sleep.as_mut().poll(cx)
        }
    }

    #[tokio::test]
    async fn the_inner_future_is_polled_only_when_it_woke() {
        let polls = Arc::new(AtomicUsize::new(0));
        let at = tokio::time::Instant::now() + Duration::from_millis(500);
        let mut quiet = Box::pin(Quiet::new(Counted {
            polls: polls.clone(),
            sleep: Box::pin(tokio::time::sleep_until(at)),
        }));
        // Another branch wakes the task every 5 ms (up to 20 times) before the timer is due.
        let mut ticks = 0;
        loop {
            tokio::select! {
                biased;
                () = quiet.as_mut() => break,
                () = tokio::time::sleep(Duration::from_millis(5)), if ticks < 20 => ticks += 1,
            }
        }
        assert!(ticks >= 5, "{ticks} other wake-ups");
        assert!(tokio::time::Instant::now() >= at);
        // Once at first, once when the timer fired: not once per wake-up of the task.
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }
}
