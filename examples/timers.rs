//! Timers, an idle handle, a post from another thread and Ctrl-C, all on one loop thread.
//!
//! `cargo run --example timers`: ticks every second and ends after five; Ctrl-C ends it early.

use std::time::Duration;

use reactor::{EventLoop, signal::SIGINT};

fn main() -> Result<(), reactor::Error> {
    let mut lp = EventLoop::new()?;
    let start = lp.now();

    // A repeating timer.
    lp.set_interval(Duration::from_secs(1), move |core, _| {
        println!("tick at {:.1?}", core.now() - start);
    });

    // A one-shot timer that ends the program.
    lp.set_timeout(Duration::from_secs(5), |core| {
        println!("five seconds are up");
        core.stop();
    });

    // Background work in small steps: an idle handle runs once per iteration and keeps the
    // poll from blocking until it closes itself.
    let (mut n, mut sum) = (0u64, 0u64);
    lp.idle(move |core, me| {
        for _ in 0..1000 {
            n += 1;
            sum += n;
        }
        if n == 1_000_000 {
            println!("idle: 1 + 2 + ... + {n} = {sum}");
            core.close(me).ok();
        }
    });

    // Heavy work on another thread; its result comes back to the loop thread.
    let remote = lp.remote();
    std::thread::spawn(move || {
        let is_prime = |n: &u32| (2..).take_while(|d| d * d <= *n).all(|d| n % d != 0);
        let primes = (2..300_000).filter(is_prime).count();
        remote.post(move |_| println!("thread: {primes} primes below 300000")).ok();
    });

    // Ctrl-C arrives as an ordinary callback on the loop thread.
    lp.signal(SIGINT, |core, _, _| {
        println!("Ctrl-C: stopping");
        core.stop();
    })?;

    lp.run()?;
    println!("the loop has returned");
    Ok(())
}
