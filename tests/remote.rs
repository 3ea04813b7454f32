//! Cross-thread posting through `Remote`: delivery, ordering, backpressure, liveness, errors.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use reactor::remote::POSTS_PER_ITERATION;
use reactor::{Core, EventLoop, PostErrorKind};

/// How long any wait in these tests may take before the test fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(5);

const SENDERS: usize = 8;
const POSTS_PER_SENDER: u32 = 10_000;

/// Arms an unreferenced timer that stops the loop after [`LIMIT`]; it does not keep the loop
/// alive. Returns the flag it sets: a test asserts it is unset. (Panicking would not do: the
/// loop catches panics in callbacks.)
fn safety_net(core: &mut Core) -> Rc<Cell<bool>> {
    let fired = Rc::new(Cell::new(false));
    let flag = fired.clone();
    let net = core.set_timeout(LIMIT, move |core| {
        flag.set(true);
        core.stop();
    });
    core.unref(net).unwrap();
    fired
}

/// Runs `f` on a fresh thread (which may create a loop there) and returns its result; fails if
/// it takes longer than [`LIMIT`], so that a call that must not block cannot hang the test.
fn within_limit<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(LIMIT).expect("the thread blocked or panicked")
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// A closure to post that counts its runs.
fn count_into(count: &Arc<AtomicUsize>) -> impl FnOnce(&mut Core) + Send + 'static {
    let count = count.clone();
    move |_| {
        count.fetch_add(1, SeqCst);
    }
}

/// What `flood` saw: per sender, the indices the loop received, in the order it ran them; and
/// the largest number of posted-but-unrun closures any sender observed after a post returned.
struct Flood {
    received: Vec<Vec<u32>>,
    max_outstanding: usize,
}

/// [`SENDERS`] threads post [`POSTS_PER_SENDER`] closures each into a loop with the given inbox
/// capacity; the loop runs until every sender has dropped its `Remote`.
fn flood(capacity: usize) -> Flood {
    let mut lp = EventLoop::builder().remote_capacity(capacity).build().unwrap();
    let net = safety_net(&mut lp);
    let log = Arc::new(Mutex::new(Vec::with_capacity(SENDERS * POSTS_PER_SENDER as usize)));
    let (posted, ran) = (counter(), counter());
    let max_outstanding = counter();

    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let remote = lp.remote();
            let (log, posted, ran) = (log.clone(), posted.clone(), ran.clone());
            let max_outstanding = max_outstanding.clone();
            thread::spawn(move || {
                for i in 0..POSTS_PER_SENDER {
                    let (log, runs) = (log.clone(), ran.clone());
                    let delivered = remote.post(move |_| {
                        runs.fetch_add(1, SeqCst);
                        log.lock().unwrap().push((sender, i));
                    });
                    if delivered.is_err() {
                        return; // the loop is gone: the test has already failed
                    }
                    // Counted after the post returned and compared with a later count of runs,
                    // this never overstates how many closures are in the loop's hands.
                    let posted = posted.fetch_add(1, SeqCst) + 1;
                    max_outstanding.fetch_max(posted.saturating_sub(ran.load(SeqCst)), SeqCst);
                }
            })
        })
        .collect();

    lp.run().unwrap();
    assert!(!net.get(), "run() did not return within {LIMIT:?}");
    drop(lp); // unblocks any sender still waiting, had run() returned early
    for sender in senders {
        sender.join().unwrap();
    }

    let mut received = vec![Vec::new(); SENDERS];
    for (sender, i) in log.lock().unwrap().drain(..) {
        received[sender].push(i);
    }
    Flood { received, max_outstanding: max_outstanding.load(SeqCst) }
}

fn assert_all_delivered_in_order(flood: &Flood) {
    let expected: Vec<u32> = (0..POSTS_PER_SENDER).collect();
    let total: usize = flood.received.iter().map(Vec::len).sum();
    assert_eq!(total, SENDERS * POSTS_PER_SENDER as usize);
    for (sender, received) in flood.received.iter().enumerate() {
        assert!(*received == expected, "sender {sender}: posts lost, repeated or reordered");
    }
}

#[test]
fn posts_from_eight_threads_arrive_once_each_in_sender_order() {
    let flood = flood(4096);
    assert_all_delivered_in_order(&flood);
}

#[test]
fn a_small_inbox_blocks_senders_and_loses_nothing() {
    const CAPACITY: usize = 64;
    let flood = flood(CAPACITY);
    assert_all_delivered_in_order(&flood);
    // At most one full inbox waiting plus one full batch being run: senders were held back.
    assert!(
        flood.max_outstanding <= 2 * CAPACITY,
        "{} closures outstanding with an inbox of {CAPACITY}",
        flood.max_outstanding
    );
}

#[test]
fn a_referenced_remote_keeps_run_going_until_dropped() {
    let mut lp = EventLoop::new().unwrap();
    let net = safety_net(&mut lp);
    let remote = lp.remote();
    let (started_tx, started_rx) = mpsc::channel();
    lp.defer(move |_| started_tx.send(()).unwrap()); // runs in the loop's first iteration
    let (ran, dropped) = (counter(), Arc::new(AtomicBool::new(false)));

    let worker = thread::spawn({
        let (ran, dropped) = (ran.clone(), dropped.clone());
        move || {
            started_rx.recv_timeout(LIMIT).expect("the loop did not start");
            let (ack_tx, ack_rx) = mpsc::channel();
            remote
                .post(move |_| {
                    ran.fetch_add(1, SeqCst);
                    ack_tx.send(()).unwrap();
                })
                .unwrap();
            ack_rx.recv_timeout(LIMIT).expect("the posted closure did not run");
            dropped.store(true, SeqCst);
            drop(remote);
        }
    });

    lp.run().unwrap();
    assert!(!net.get(), "run() did not return within {LIMIT:?} of the Remote's drop");
    assert!(dropped.load(SeqCst), "run() returned while a referenced Remote existed");
    assert_eq!(ran.load(SeqCst), 1);
    worker.join().unwrap();
}

#[test]
fn an_unreferenced_remote_does_not_keep_the_loop_alive() {
    let mut lp = EventLoop::new().unwrap();
    let mut remote = lp.remote();
    assert!(lp.alive());
    remote.unref();
    let clone = remote.clone(); // clones of an unreferenced Remote are unreferenced too
    assert!(!lp.alive());

    let net = safety_net(&mut lp);
    lp.run().unwrap(); // nothing keeps it alive: returns at once
    assert!(!net.get());

    // It still posts, and the closure keeps the loop alive until it has run.
    let ran = counter();
    clone.post(count_into(&ran)).unwrap();
    assert!(lp.alive());
    lp.run().unwrap();
    assert_eq!(ran.load(SeqCst), 1);
    assert!(!lp.alive());

    remote.ref_();
    assert!(lp.alive());
}

#[test]
fn a_closure_posted_before_its_remote_is_dropped_still_runs() {
    let mut lp = EventLoop::new().unwrap();
    let net = safety_net(&mut lp);
    let ran = counter();
    let remote = lp.remote();
    remote.post(count_into(&ran)).unwrap();
    drop(remote);
    assert!(lp.alive(), "a queued closure keeps the loop alive");
    lp.run().unwrap();
    assert!(!net.get());
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn try_post_on_a_full_inbox_hands_the_closure_back() {
    let mut lp = EventLoop::builder().remote_capacity(2).build().unwrap();
    let ran = counter();
    let remote = lp.remote();
    remote.try_post(count_into(&ran)).unwrap();
    remote.try_post(count_into(&ran)).unwrap();

    let err = remote.try_post(count_into(&ran)).unwrap_err();
    assert_eq!(err.kind(), PostErrorKind::Full);
    assert_eq!(ran.load(SeqCst), 0);
    (err.into_inner())(&mut lp); // the very closure that was refused
    assert_eq!(ran.load(SeqCst), 1);

    drop(remote);
    lp.run().unwrap();
    assert_eq!(ran.load(SeqCst), 3);
}

#[test]
fn post_on_the_loop_thread_returns_full_instead_of_blocking() {
    // The loop lives on a helper thread so that a post that blocks fails the test.
    let (kind, ran) = within_limit(|| {
        let mut lp = EventLoop::builder().remote_capacity(2).build().unwrap();
        let ran = counter();
        let remote = lp.remote();
        remote.post(count_into(&ran)).unwrap();
        remote.post(count_into(&ran)).unwrap();
        let kind = remote.post(count_into(&ran)).unwrap_err().kind();
        drop(remote);
        lp.run().unwrap();
        (kind, ran.load(SeqCst))
    });
    assert_eq!(kind, PostErrorKind::Full);
    assert_eq!(ran, 2);
}

#[test]
fn posting_after_the_loop_is_dropped_fails_with_closed() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let queued = counter();
    remote.post(count_into(&queued)).unwrap();
    drop(lp);
    assert_eq!(queued.load(SeqCst), 0, "closures still queued are dropped unrun");

    let ran = counter();
    let err = remote.post(count_into(&ran)).unwrap_err();
    assert_eq!(err.kind(), PostErrorKind::Closed);
    let err = remote.try_post(err.into_inner()).unwrap_err();
    assert_eq!(err.kind(), PostErrorKind::Closed);
    // From another thread too, where `post` would otherwise block or succeed.
    let kind = within_limit(move || remote.post(|_| {}).unwrap_err().kind());
    assert_eq!(kind, PostErrorKind::Closed);
    assert_eq!(ran.load(SeqCst), 0);
}

#[test]
fn a_sender_blocked_on_a_full_inbox_gets_closed_when_the_loop_goes() {
    let lp = EventLoop::builder().remote_capacity(1).build().unwrap();
    let remote = lp.remote();
    let (filled_tx, filled_rx) = mpsc::channel();
    let sender = thread::spawn(move || {
        remote.post(|_| {}).unwrap();
        filled_tx.send(()).unwrap();
        remote.post(|_| {}).unwrap_err().kind() // blocks until the loop is dropped
    });
    filled_rx.recv_timeout(LIMIT).expect("the first post did not return");
    drop(lp);
    let kind = within_limit(move || sender.join().unwrap());
    assert_eq!(kind, PostErrorKind::Closed);
}

#[test]
fn a_posted_closure_can_arm_a_timer() {
    let mut lp = EventLoop::new().unwrap();
    let net = safety_net(&mut lp);
    let fired = counter();
    let remote = lp.remote();
    let worker = thread::spawn({
        let fired = fired.clone();
        move || {
            remote
                .post(move |core| {
                    core.set_timeout(Duration::from_millis(1), move |_| {
                        fired.fetch_add(1, SeqCst);
                    });
                })
                .unwrap();
        }
    });
    // The Remote keeps the loop alive until the post, then the timer until it fires.
    lp.run().unwrap();
    worker.join().unwrap();
    assert!(!net.get());
    assert_eq!(fired.load(SeqCst), 1);
}

#[test]
fn a_flood_of_posts_is_spread_over_iterations() {
    let mut lp = EventLoop::builder().remote_capacity(4 * POSTS_PER_ITERATION).build().unwrap();
    let net = safety_net(&mut lp);
    let log = Arc::new(Mutex::new(Vec::new()));
    let remote = lp.remote();
    for i in 0..3 * POSTS_PER_ITERATION {
        let log = log.clone();
        remote.post(move |_| log.lock().unwrap().push(i)).unwrap();
    }
    drop(remote);

    lp.run_nowait().unwrap();
    assert_eq!(log.lock().unwrap().len(), POSTS_PER_ITERATION);

    lp.run().unwrap();
    assert!(!net.get());
    let expected: Vec<usize> = (0..3 * POSTS_PER_ITERATION).collect();
    assert!(*log.lock().unwrap() == expected, "posts lost, repeated or reordered");
}
