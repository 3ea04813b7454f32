//! Causal traces, context values, slow-callback reports and the watchdog.
//!
//! The chains are checked step by step, each against the line of the call that made it: the
//! calls are written as `(line!(), call)` so that the line is known without counting.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

use reactor::trace::{self, Act, Chain, MAX_DEPTH};
use reactor::{Conn, Core, EventLoop, HandleId, Stream, StreamHandler};
use util::within;

const LIMIT: Duration = Duration::from_secs(20);

fn traced_loop() -> EventLoop {
    EventLoop::builder().tracing(true).build().expect("create a loop")
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// What a step of a chain should be: the act, the callback it was made in (as printed), and
/// the line of this file it was made on.
struct Step(Act, Option<String>, u32);

/// Checks every step of `chain`, and that there are no others.
fn assert_steps(chain: &Chain, steps: &[Step]) {
    let text = chain.to_string();
    assert_eq!(chain.links().len(), steps.len(), "steps of {text}");
    for (link, Step(act, within, line)) in chain.links().iter().zip(steps) {
        assert_eq!(link.act(), *act, "{text}");
        assert_eq!(link.within().map(|w| w.to_string()), *within, "{text}");
        assert_eq!(link.site().file(), file!(), "{text}");
        assert_eq!(link.site().line(), *line, "{text}");
    }
    assert!(!chain.is_cut(), "{text}");
}

/// Connects, sends `data`, and reads until the server closes. On its own thread.
fn client(addr: SocketAddr, data: &'static [u8]) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        stream.write_all(data).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer
    })
}

/// A stream handler made of a closure for `on_data`.
struct OnData<F>(F);

impl<F: FnMut(&mut Conn<'_>, &[u8]) + 'static> StreamHandler for OnData<F> {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        (self.0)(conn, data);
    }
}

#[test]
fn a_timer_armed_in_a_data_callback_tells_the_whole_chain() {
    within(LIMIT, || {
        let mut lp = traced_loop();
        let fired: Rc<RefCell<Option<(Chain, HandleId)>>> = Rc::default();
        let armed_at = Rc::new(Cell::new(0));
        let (out, line_out) = (fired.clone(), armed_at.clone());
        let factory = move |_: Stream| {
            let (out, line_out) = (out.clone(), line_out.clone());
            OnData(move |conn: &mut Conn<'_>, _: &[u8]| {
                let (stream, out) = (conn.id(), out.clone());
                let fire = move |core: &mut Core| {
                    *out.borrow_mut() = Some((trace::current(core), stream.id()));
                    let _ = core.close(stream);
                };
                let core = conn.core();
                let (line, _) = (line!(), core.set_timeout(Duration::from_millis(1), fire));
                line_out.set(line);
            })
        };
        let (listen_line, listener) = (line!(), lp.listen_tcp(any_port(), factory).unwrap());
        let addr = lp.local_addr(listener).unwrap();
        let peer = client(addr, b"go");
        while fired.borrow().is_none() {
            lp.run_once().unwrap();
        }
        lp.close(listener).unwrap();
        lp.run().unwrap();
        peer.join().unwrap();

        let (chain, stream) = fired.borrow_mut().take().unwrap();
        let armed_line = armed_at.get();
        let listener_name = format!("listener{}", listener.id());
        let data_callback = format!("data callback of stream{stream}");
        let callback = chain.callback().unwrap();
        assert_eq!((callback.kind(), callback.event()), ("timer", ""), "{chain}");
        assert_eq!(chain.site().unwrap().line(), armed_line);
        assert_steps(
            &chain,
            &[
                Step(Act::Armed, Some(data_callback), armed_line),
                Step(
                    Act::Accepted,
                    Some(format!("accept callback of {listener_name}")),
                    listen_line,
                ),
                Step(Act::Created, None, listen_line),
            ],
        );
        let text = chain.to_string();
        let expected =
            format!(" <- armed in data callback of stream{stream} (tests/trace.rs:{armed_line}:");
        assert!(text.starts_with("callback of timer#"), "{text}");
        assert!(text.contains(&expected), "{text}");
        assert!(
            text.contains(&format!(
                " <- accepted by {listener_name} (tests/trace.rs:{listen_line}:"
            )),
            "{text}"
        );
        assert!(
            text.ends_with(&format!(
                " <- created (tests/trace.rs:{listen_line}:{})",
                chain.links()[2].site().column()
            )),
            "{text}"
        );
    });
}

#[test]
fn a_panic_in_nested_callbacks_is_reported_with_its_chain() {
    within(LIMIT, || {
        let mut lp = traced_loop();
        let reports = Rc::new(RefCell::new(Vec::new()));
        let sink = reports.clone();
        lp.set_panic_hook(move |report| {
            sink.borrow_mut().push((report.chain().clone(), report.to_string()));
        });
        let lines = Rc::new(RefCell::new(Vec::new()));
        let (l1, l2) = (lines.clone(), lines.clone());
        let work_done = |_: &mut Core, _: Result<u32, reactor::WorkError>| panic!("deep down");
        let queue = move |core: &mut Core| {
            let (line, _) = (line!(), core.queue_work(|| 7, work_done).unwrap());
            l2.borrow_mut().push(line);
        };
        let timer = move |core: &mut Core| {
            let (line, ()) = (line!(), core.defer(queue));
            l1.borrow_mut().push(line);
        };
        let (armed_line, timer_id) = (line!(), lp.set_timeout(Duration::ZERO, timer));
        lp.run().unwrap();

        let (defer_line, queue_line) = (lines.borrow()[0], lines.borrow()[1]);
        let reports = reports.borrow();
        assert_eq!(reports.len(), 1);
        let (chain, text) = &reports[0];
        assert_eq!(chain.callback().unwrap().kind(), "work done", "{text}");
        assert_eq!(chain.site().unwrap().line(), queue_line);
        assert_steps(
            chain,
            &[
                Step(Act::QueuedWork, Some("deferred callback".into()), queue_line),
                Step(
                    Act::Deferred,
                    Some(format!("callback of timer{}", timer_id.id())),
                    defer_line,
                ),
                Step(Act::Armed, None, armed_line),
            ],
        );
        assert!(text.contains("deep down"), "{text}");
        assert!(text.contains("; chain: work done callback (tests/trace.rs:"), "{text}");
    });
}

#[derive(Debug, PartialEq)]
struct RequestId(u32);

#[test]
fn a_context_reaches_every_callback_its_request_causes() {
    within(LIMIT, || {
        // Tracing off: a context is carried all the same.
        let mut lp = EventLoop::builder().tracing(false).build().unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let out = seen.clone();
        lp.set_timeout(Duration::ZERO, move |core| {
            assert_eq!(core.context::<RequestId>(), None);
            core.set_context(RequestId(42));
            let out = out.clone();
            core.set_timeout(Duration::from_millis(1), move |core| {
                out.borrow_mut().push(("timer", core.context::<RequestId>().map(|r| r.0)));
                let out = out.clone();
                let done = move |core: &mut Core, _: Result<(), reactor::WorkError>| {
                    out.borrow_mut().push(("work done", core.context::<RequestId>().map(|r| r.0)));
                    let out = out.clone();
                    core.defer(move |core| {
                        out.borrow_mut()
                            .push(("deferred", core.context::<RequestId>().map(|r| r.0)));
                    });
                };
                core.queue_work(|| (), done).unwrap();
            });
        });
        let out = seen.clone();
        lp.set_timeout(Duration::from_millis(2), move |core| {
            out.borrow_mut().push(("unrelated", core.context::<RequestId>().map(|r| r.0)));
        });
        lp.run().unwrap();
        let mut seen = seen.borrow().clone();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("deferred", Some(42)),
                ("timer", Some(42)),
                ("unrelated", None),
                ("work done", Some(42))
            ]
        );
    });
}

#[test]
fn contexts_of_two_concurrent_requests_do_not_leak_into_each_other() {
    within(LIMIT, || {
        let mut lp = traced_loop();
        // Both requests' pool work waits here, so both are in flight at once: the second has
        // set its context before the first one's `done` looks at its own.
        let both = Arc::new(Barrier::new(2));
        // (the id the request sent, what its data callback saw before setting one, what its
        // work's `done` and the timer that armed saw)
        let seen = Rc::new(RefCell::new(Vec::new()));
        let out = seen.clone();
        let factory = move |_: Stream| {
            let (out, both) = (out.clone(), both.clone());
            OnData(move |conn: &mut Conn<'_>, data: &[u8]| {
                let id: u32 = std::str::from_utf8(data).unwrap().trim().parse().unwrap();
                let (out, both, stream) = (out.clone(), both.clone(), conn.id());
                let core = conn.core();
                let before = core.context::<RequestId>().map(|r| r.0);
                core.set_context(RequestId(id));
                let done = move |core: &mut Core, _: Result<(), reactor::WorkError>| {
                    let in_done = core.context::<RequestId>().map(|r| r.0);
                    core.set_timeout(Duration::ZERO, move |core| {
                        let in_timer = core.context::<RequestId>().map(|r| r.0);
                        out.borrow_mut().push((id, before, in_done, in_timer));
                        let _ = core.close(stream);
                    });
                };
                core.queue_work(move || _ = both.wait(), done).unwrap();
            })
        };
        let listener = lp.listen_tcp(any_port(), factory).unwrap();
        let addr = lp.local_addr(listener).unwrap();
        let (first, second) = (client(addr, b"1\n"), client(addr, b"2\n"));
        while seen.borrow().len() < 2 {
            lp.run_once().unwrap();
        }
        lp.close(listener).unwrap();
        lp.run().unwrap();
        first.join().unwrap();
        second.join().unwrap();
        let mut seen = seen.borrow().clone();
        seen.sort();
        assert_eq!(seen, [(1, None, Some(1), Some(1)), (2, None, Some(2), Some(2))]);
    });
}

#[test]
fn a_slow_callback_is_reported_with_its_site_and_a_quick_one_is_not() {
    within(LIMIT, || {
        let mut lp = traced_loop();
        let reports = Rc::new(RefCell::new(Vec::new()));
        let sink = reports.clone();
        lp.set_slow_callback_threshold(Some(Duration::from_millis(20)));
        lp.set_slow_callback_hook(move |report| {
            sink.borrow_mut().push((report.duration(), report.chain().clone()))
        });
        let spin = |_: &mut Core| {
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(40) {}
        };
        let (slow_line, _) = (line!(), lp.set_timeout(Duration::ZERO, spin));
        lp.set_timeout(Duration::ZERO, |_| {});
        lp.run().unwrap();
        let reports = reports.borrow();
        assert_eq!(reports.len(), 1, "{reports:?}");
        let (took, chain) = &reports[0];
        assert!(*took >= Duration::from_millis(40), "{took:?}");
        assert_eq!(chain.site().unwrap().line(), slow_line, "{chain}");
        assert_eq!(chain.callback().unwrap().kind(), "timer");
    });
}

#[test]
fn the_watchdog_names_the_callback_that_is_stuck_while_it_is_stuck() {
    within(LIMIT, || {
        let mut lp = traced_loop();
        let (reports, received) = mpsc::channel();
        lp.start_watchdog(Duration::from_millis(50), move |blocked| {
            let _ =
                reports.send((blocked.duration(), blocked.chain().cloned(), blocked.to_string()));
        })
        .unwrap();
        let got = Rc::new(RefCell::new(None));
        let out = got.clone();
        // The callback does not return until the watchdog has reported it.
        let stuck = move |_: &mut Core| *out.borrow_mut() = Some(received.recv_timeout(LIMIT));
        let (stuck_line, _) = (line!(), lp.set_timeout(Duration::ZERO, stuck));
        lp.run().unwrap();
        lp.stop_watchdog();

        let (took, chain, text) = got.borrow_mut().take().unwrap().expect("a watchdog report");
        assert!(took >= Duration::from_millis(50), "{took:?}");
        let chain = chain.expect("the running callback");
        assert_eq!(chain.site().unwrap().line(), stuck_line, "{text}");
        assert_eq!(chain.site().unwrap().file(), file!());
        assert_eq!(chain.callback().unwrap().kind(), "timer");
        assert_steps(&chain, &[Step(Act::Armed, None, stuck_line)]);
        assert!(text.starts_with("reactor: loop blocked for "), "{text}");
    });
}

#[test]
fn the_watchdog_stays_quiet_while_the_loop_sleeps_in_poll() {
    within(LIMIT, || {
        let mut lp = traced_loop();
        let (reports, received) = mpsc::channel();
        lp.start_watchdog(Duration::from_millis(100), move |blocked| {
            let _ = reports.send(blocked.to_string());
        })
        .unwrap();
        // The loop sleeps in poll for 400 ms: four thresholds, and not one report.
        lp.set_timeout(Duration::from_millis(400), |_| {});
        lp.run().unwrap();
        lp.stop_watchdog();
        assert_eq!(received.try_recv().ok(), None);
    });
}

#[test]
fn with_tracing_off_there_is_no_chain_but_a_slow_callback_check_names_the_callback() {
    within(LIMIT, || {
        let mut lp = EventLoop::builder().tracing(false).build().unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let out = seen.clone();
        let look = move |core: &mut Core| out.borrow_mut().push(trace::current(core));
        lp.set_timeout(Duration::ZERO, look.clone());
        lp.run().unwrap();
        assert_eq!(seen.borrow()[0].to_string(), "(tracing off)");
        assert_eq!(seen.borrow()[0].callback(), None);
        // A slow-callback check keeps frames: the callback is named, with no steps.
        lp.set_slow_callback_threshold(Some(Duration::from_secs(60)));
        let (line, _) = (line!(), lp.set_timeout(Duration::ZERO, look));
        lp.run().unwrap();
        let chain = &seen.borrow()[1];
        assert!(chain.links().is_empty(), "{chain}");
        assert_eq!(chain.site().unwrap().line(), line);
        assert_eq!(chain.callback().unwrap().kind(), "timer");
        assert_eq!(trace::current(&lp).to_string(), "top level");
    });
}

#[test]
fn a_chain_that_goes_on_forever_shows_its_newest_steps_and_says_it_was_cut() {
    within(LIMIT, || {
        let mut lp = traced_loop();
        let seen = Rc::new(RefCell::new(None));
        fn again(core: &mut Core, left: u32, out: Rc<RefCell<Option<Chain>>>) {
            if left == 0 {
                *out.borrow_mut() = Some(trace::current(core));
                return;
            }
            core.defer(move |core| again(core, left - 1, out));
        }
        let out = seen.clone();
        lp.set_timeout(Duration::ZERO, move |core| again(core, 1000, out));
        lp.run().unwrap();
        let chain = seen.borrow_mut().take().unwrap();
        assert_eq!(chain.links().len(), MAX_DEPTH);
        assert!(chain.is_cut());
        assert!(chain.links().iter().all(|link| link.act() == Act::Deferred));
        assert!(chain.to_string().ends_with(" <- …"));
    });
}

#[test]
fn pipelined_http_requests_each_get_their_own_context() {
    use reactor::http::{Request, Response, Server, ServerConfig};
    within(LIMIT, || {
        let mut lp = traced_loop();
        // (path, context before the handler sets one, context its timer sees)
        let seen = Rc::new(RefCell::new(Vec::new()));
        let out = seen.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            let id: u32 = req.path().trim_start_matches('/').parse().unwrap();
            let before = core.context::<RequestId>().map(|r| r.0);
            core.set_context(RequestId(id));
            let out = out.clone();
            core.set_timeout(Duration::ZERO, move |core| {
                out.borrow_mut().push((id, before, core.context::<RequestId>().map(|r| r.0)));
                let _ = res.send(core, 200, &[], b"ok");
            });
        };
        let server = Server::new(&mut lp, ServerConfig::default(), handler);
        let listener = server.listen(&mut lp, any_port()).unwrap();
        let addr = lp.local_addr(listener).unwrap();
        // Both requests in one write: one data callback reads and handles both.
        let peer = client(addr, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        while seen.borrow().len() < 2 {
            lp.run_once().unwrap();
        }
        server.shutdown(&mut lp);
        lp.run().unwrap();
        let answer = String::from_utf8(peer.join().unwrap()).unwrap();
        assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
        assert_eq!(*seen.borrow(), [(1, None, Some(1)), (2, None, Some(2))]);
    });
}

/// What a write completion saw: its chain and its result.
type Written = (Chain, reactor::Result<()>);

#[test]
fn a_write_completed_after_pool_work_tells_the_whole_chain() {
    within(LIMIT, || {
        let mut lp = traced_loop();
        let written: Rc<RefCell<Option<Written>>> = Rc::default();
        let lines = Rc::new(RefCell::new(Vec::new()));
        let (out, lines_out) = (written.clone(), lines.clone());
        let factory = move |_: Stream| {
            let (out, lines) = (out.clone(), lines_out.clone());
            OnData(move |conn: &mut Conn<'_>, data: &[u8]| {
                let (core, stream) = conn.split();
                let (out, lines2, text) = (out.clone(), lines.clone(), data.to_vec());
                let done = move |core: &mut Core, upper: Result<Vec<u8>, reactor::WorkError>| {
                    let on_written = move |core: &mut Core, result: reactor::Result<()>| {
                        *out.borrow_mut() = Some((trace::current(core), result));
                        let _ = core.close(stream);
                    };
                    let upper = upper.unwrap();
                    let (line, _) = (line!(), core.write_with(stream, &upper, on_written));
                    lines2.borrow_mut().push(line);
                };
                let work = move || text.to_ascii_uppercase();
                let (line, _) = (line!(), core.queue_work(work, done));
                lines.borrow_mut().push(line);
            })
        };
        let (listen_line, listener) = (line!(), lp.listen_tcp(any_port(), factory).unwrap());
        let addr = lp.local_addr(listener).unwrap();
        let peer = client(addr, b"hello");
        while written.borrow().is_none() {
            lp.run_once().unwrap();
        }
        lp.close(listener).unwrap();
        lp.run().unwrap();
        assert_eq!(peer.join().unwrap(), b"HELLO");

        let (chain, result) = written.borrow_mut().take().unwrap();
        result.unwrap();
        let (queue_line, write_line) = (lines.borrow()[0], lines.borrow()[1]);
        assert_eq!(chain.callback().unwrap().kind(), "write done", "{chain}");
        assert_eq!(chain.site().unwrap().line(), write_line);
        let stream = chain.links()[1].within().unwrap().handle_id().unwrap();
        assert_steps(
            &chain,
            &[
                Step(Act::Wrote, Some("work done callback".into()), write_line),
                Step(Act::QueuedWork, Some(format!("data callback of stream{stream}")), queue_line),
                Step(
                    Act::Accepted,
                    Some(format!("accept callback of listener{}", listener.id())),
                    listen_line,
                ),
                Step(Act::Created, None, listen_line),
            ],
        );
    });
}
