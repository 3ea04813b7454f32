//! What it costs the loop to call user code, against the cheapest way to call the same closures.
//!
//! `cargo bench --bench dispatch`
//!
//! - `handle_callbacks`: 1,000 idle handles with empty callbacks, 1,000 iterations: one million
//!   callbacks through `dispatch::run_handle` (slab lookup, callback taken out and put back,
//!   `catch_unwind`). Baseline: a `Vec` of boxed `FnMut`s called in a loop.
//! - `deferred`: one million empty closures deferred and run in one check phase. Baseline: the
//!   same boxed `FnOnce`s pushed to and popped from a `VecDeque`.
//! - `empty_iteration`: one `run_nowait` of a loop with nothing to do: all phases plus one
//!   `epoll_wait` with a zero timeout. Baseline: that `epoll_wait` alone (`mio::Poll::poll`).

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reactor::EventLoop;

const HANDLES: usize = 1_000;
const ITERATIONS: usize = 1_000;
const DEFERRED: usize = 1_000_000;

/// The baselines' closures, shaped like the loop's: state passed by `&mut`, plus an id.
type Callback = Box<dyn FnMut(&mut u64, usize)>;
type Once = Box<dyn FnOnce(&mut u64)>;

fn handle_callbacks(c: &mut Criterion) {
    let mut group = c.benchmark_group("dispatch/handle_callbacks");
    group.throughput(Throughput::Elements((HANDLES * ITERATIONS) as u64));
    group.sample_size(10);

    group.bench_function("reactor: idle callbacks", |b| {
        let mut lp = EventLoop::new().unwrap();
        for _ in 0..HANDLES {
            lp.idle(|_, me| {
                black_box(me);
            });
        }
        b.iter(|| {
            for _ in 0..ITERATIONS {
                lp.run_nowait().unwrap();
            }
        });
    });

    group.bench_function("baseline: Vec<Box<dyn FnMut>>", |b| {
        let mut callbacks: Vec<Callback> = (0..HANDLES)
            .map(|_| {
                Box::new(|_: &mut u64, id: usize| {
                    black_box(id);
                }) as Box<dyn FnMut(&mut u64, usize)>
            })
            .collect();
        let mut state = 0u64;
        b.iter(|| {
            for _ in 0..ITERATIONS {
                for (id, callback) in callbacks.iter_mut().enumerate() {
                    callback(black_box(&mut state), id);
                }
            }
        });
    });
    group.finish();
}

fn deferred(c: &mut Criterion) {
    let mut group = c.benchmark_group("dispatch/deferred");
    group.throughput(Throughput::Elements(DEFERRED as u64));
    group.sample_size(10);

    group.bench_function("reactor: defer + check phase", |b| {
        let mut lp = EventLoop::new().unwrap();
        b.iter(|| {
            for i in 0..DEFERRED {
                lp.defer(move |_| {
                    black_box(i);
                });
            }
            lp.run_nowait().unwrap();
        });
    });

    group.bench_function("baseline: VecDeque<Box<dyn FnOnce>>", |b| {
        let mut queue: VecDeque<Once> = VecDeque::new();
        let mut state = 0u64;
        b.iter(|| {
            for i in 0..DEFERRED {
                queue.push_back(Box::new(move |_| {
                    black_box(i);
                }));
            }
            while let Some(callback) = queue.pop_front() {
                callback(black_box(&mut state));
            }
        });
    });
    group.finish();
}

fn empty_iteration(c: &mut Criterion) {
    let mut group = c.benchmark_group("dispatch/empty_iteration");
    group.throughput(Throughput::Elements(1));

    group.bench_function("reactor: run_nowait", |b| {
        let mut lp = EventLoop::new().unwrap();
        b.iter(|| lp.run_nowait().unwrap());
    });

    group.bench_function("baseline: epoll_wait(0)", |b| {
        let mut poll = mio::Poll::new().unwrap();
        let mut events = mio::Events::with_capacity(1024);
        b.iter(|| poll.poll(&mut events, Some(Duration::ZERO)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, handle_callbacks, deferred, empty_iteration);
criterion_main!(benches);
