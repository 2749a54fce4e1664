//! How a writer waits for Raft's answer.
//!
//! A write's answer comes from Raft's thread ([`crate::raft`]). Awaited as
//! a future, it reaches the writer's task through tokio's scheduler: the
//! task goes to the runtime's queue, a parked worker thread is woken to
//! take it, and that worker, the last one looking for work when it finds
//! some, wakes its sibling as well (tokio keeps a worker looking while
//! there is work). On a virtual machine each wake-up of an idle CPU costs
//! tens of microseconds, and a single-row INSERT's round trip is a few
//! hundred (README, "A single-row INSERT's round trip").
//!
//! ```text
//!   awaited:  Raft's thread ──wake──► runtime queue ──unpark──► worker ──unpark──► sibling
//!   parked:   Raft's thread ──unpark──► the writer's own thread
//! ```
//!
//! A writer whose command is the only one in flight therefore parks its
//! own thread for a while, and Raft's answer wakes that thread directly.
//! It parks rather than polls, so that a busy machine loses no CPU to it
//! (polling for the answer was tried and doubled a write's latency with
//! both cores busy). While it is parked, the tasks queued on its worker
//! wait, or are taken by the other worker if that one is awake: for at most
//! [`ANSWER_PARK_MAX`], after which the writer awaits as usual. Writers with
//! others in flight always await: they share syncs (group commit), and
//! parked workers would hold back each other's sessions. So does a large
//! command (a bulk load's part), whose append and sync outlast the park.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::coop;

/// The longest a writer parks its thread for its answer: several of this
/// machine's syncs, short enough that a slow disk holds the worker's other
/// tasks back no longer than this before the writer yields it.
pub(crate) const ANSWER_PARK_MAX: Duration = Duration::from_millis(2);
/// Only a command carrying up to this many bytes of rows parks: a larger
/// one's append takes longer than the park.
pub(crate) const ANSWER_PARK_COMMAND_BYTES_MAX: u64 = 64 * 1024;

/// The writes queued on one node and not yet answered.
#[derive(Default)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Counts a write of a command carrying `bytes` of rows in flight,
    /// until the returned ticket is dropped.
    pub(crate) fn enter(&self, bytes: u64) -> Ticket {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ticket {
            in_flight: self.0.clone(),
            bytes,
        }
    }
}

/// One write in flight, counted until it is dropped.
pub(crate) struct Ticket {
    in_flight: Arc<AtomicUsize>,
    bytes: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let before = self.in_flight.fetch_sub(1, Ordering::Relaxed);
        assert!(before > 0, "a write in flight was counted once");
    }
}

impl Ticket {
    /// Waits for `answer`: parked, while this is the only write in flight,
    /// a small one, and the thread is one of a multi-threaded runtime's
    /// workers (parking a current-thread runtime would stop all of it),
    /// then awaited.
    pub(crate) async fn wait<F: Future + Unpin>(self, mut answer: F) -> F::Output {
        if self.may_park()
            && let Some(output) = park_for(&mut answer, ANSWER_PARK_MAX)
        {
            return output;
        }
        answer.await
    }

    fn may_park(&self) -> bool {
        let alone = self.in_flight.load(Ordering::Relaxed) == 1;
        alone
            && self.bytes <= ANSWER_PARK_COMMAND_BYTES_MAX
            && Handle::try_current()
                .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread)
    }
}

/// Wakes a parked thread.
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread, parked between polls, for up to `max`;
/// None if it is still pending then (it may be awaited after).
fn park_for<F: Future + Unpin>(future: &mut F, max: Duration) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unparker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    // Outside tokio's budget: a task that spent its budget (many writes in
    // one poll) would find the answer pending however ready it is, and be
    // woken at once, to spin until the deadline.
    let mut future = coop::unconstrained(future);
    let deadline = Instant::now() + max;
    loop {
        if let Poll::Ready(output) = Pin::new(&mut future).poll(&mut cx) {
            return Some(output);
        }
        // A spurious or stale unpark only costs another poll.
        let left = deadline.checked_duration_since(Instant::now())?;
        std::thread::park_timeout(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_count_writes_in_flight() {
        let in_flight = InFlight::default();
        let first = in_flight.enter(8);
        let second = in_flight.enter(8);
        assert_eq!(in_flight.0.load(Ordering::Relaxed), 2);
        drop(first);
        drop(second);
        assert_eq!(in_flight.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_parked_thread_is_woken_by_an_answer_from_another() {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            reply.send(7).unwrap();
        });
        // Parked for as long as it takes: only the answer's wake-up ends it.
        assert_eq!(park_for(&mut answer, Duration::from_secs(60)), Some(Ok(7)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_out_of_budget_still_gets_its_answer_parked() {
        while coop::has_budget_remaining() {
            coop::consume_budget().await;
        }
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        reply.send(7).unwrap();
        assert_eq!(park_for(&mut answer, Duration::from_secs(60)), Some(Ok(7)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_later_than_the_park_is_awaited() {
        let in_flight = InFlight::default();
        let (reply, answer) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(ANSWER_PARK_MAX * 5);
            reply.send(7).unwrap();
        });
        assert_eq!(in_flight.enter(8).wait(answer).await, Ok(7));
    }

    #[test]
    fn a_pending_future_parks_no_longer_than_asked() {
        let started = Instant::now();
        let mut never = std::future::pending::<()>();
        assert_eq!(park_for(&mut never, Duration::from_millis(5)), None);
        assert!(started.elapsed() >= Duration::from_millis(5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_a_lone_writer_on_a_worker_parks() {
        let in_flight = InFlight::default();
        let first = in_flight.enter(8);
        assert!(first.may_park());
        let second = in_flight.enter(8);
        assert!(!first.may_park() && !second.may_park());
        drop(second);
        assert!(first.may_park());
        let large = InFlight::default().enter(ANSWER_PARK_COMMAND_BYTES_MAX + 1);
        assert!(!large.may_park());
        // Off the runtime's threads there is no worker to park.
        assert!(!std::thread::spawn(move || first.may_park()).join().unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_is_not_parked() {
        // Its only thread may be the one to send the answer.
        let in_flight = InFlight::default();
        let ticket = in_flight.enter(8);
        assert!(!ticket.may_park());
        let (reply, answer) = tokio::sync::oneshot::channel();
        tokio::spawn(async move { reply.send(7).unwrap() });
        assert_eq!(ticket.wait(answer).await, Ok(7));
    }
}
