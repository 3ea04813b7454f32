//! What the thread pool costs: `cargo bench --bench pool`.
//!
//! - `round_trip`: one empty job queued and its `done` run: the hand-off to a pool thread, the
//!   post back through the loop's inbox, the wake-up of the poll and the dispatch of `done`.
//!   Baseline: the same hand-off between two plain threads over `std::sync::mpsc` channels,
//!   which is what a program without a pool would write.
//! - `jobs_1_thread`, `jobs_4_threads`: 10,000 empty jobs queued at once, then `run()` until
//!   every `done` has run; throughput in jobs per second, with a pool of 1 and of 4 threads.

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reactor::EventLoop;

/// Jobs per iteration of the throughput groups.
const JOBS: usize = 10_000;

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/round_trip");
    group.bench_function("reactor: queue_work + done", |b| {
        let mut lp = EventLoop::builder().thread_pool_size(1).build().unwrap();
        b.iter(|| {
            lp.queue_work(
                || black_box(1u32),
                |_, r| {
                    black_box(r.unwrap());
                },
            )
            .unwrap();
            lp.run().unwrap();
        });
    });
    group.bench_function("baseline: mpsc to a thread and back", |b| {
        let (to_worker, jobs) = mpsc::channel::<u32>();
        let (to_main, results) = mpsc::channel::<u32>();
        let worker = thread::spawn(move || {
            for job in jobs {
                if to_main.send(black_box(job)).is_err() {
                    break;
                }
            }
        });
        b.iter(|| {
            to_worker.send(1).unwrap();
            black_box(results.recv().unwrap());
        });
        drop(to_worker);
        worker.join().unwrap();
    });
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/jobs");
    group.throughput(Throughput::Elements(JOBS as u64));
    group.sample_size(20);
    for threads in [1, 4] {
        group.bench_function(format!("{threads} thread(s): {JOBS} empty jobs"), |b| {
            let mut lp = EventLoop::builder().thread_pool_size(threads).build().unwrap();
            b.iter(|| {
                for i in 0..JOBS {
                    lp.queue_work(
                        move || black_box(i),
                        |_, r| {
                            black_box(r.unwrap());
                        },
                    )
                    .unwrap();
                }
                lp.run().unwrap();
            });
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip, throughput);
criterion_main!(benches);
