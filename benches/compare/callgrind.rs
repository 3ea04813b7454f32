//! The callgrind section: user-space instructions per HTTP request, reactor's `examples/http`
//! against the C server's `epoll_server http`, counted by `valgrind --tool=callgrind`. Unlike
//! CPU time, the count does not drift with what else the machine does: the same binary and the
//! same requests give the same figure (to within a few instructions), so it shows small
//! changes that the noise of the timed runs hides. It counts user space only: the kernel's
//! share of a request (the `read`, the `write`, `epoll_wait`) is not in it, and is the same
//! for both servers when both make the same system calls.
//!
//! Each server runs under callgrind twice, for a small and a large number of requests on one
//! connection, then is stopped with SIGTERM; the difference of the two totals divided by the
//! difference of the counts is the cost of one request, with the start and the stop cancelled
//! out. Two shapes:
//!
//! - sequential: one `GET /plaintext`, wait for its response, the next (keep-alive);
//! - pipelined ×16: 16 requests in one write, wait for the 16 responses, the next 16.
//!
//! Every response is checked as in the HTTP section. Below the table, reactor's hottest
//! functions in the larger sequential run, per request (a function's own instructions divided
//! by the requests of that run, so the start is spread over them too).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::http::TRACED;
use crate::http::{REQUEST, read_responses};
use crate::load::{self, Peer, Res, Server, Start, connect, io_err, num};
use crate::plot;
use crate::{Ctx, Goal, Plot, Section};
use reactor::event_loop::TRACE_ENV;

/// Requests per batch in the pipelined shape.
const DEPTH: usize = 16;
/// Functions listed for reactor.
const HOT: usize = 15;

/// One measurement: a server, a shape, and the requests sent.
struct Run<'a> {
    peer: &'a Peer,
    /// Requests per write: 1 (sequential) or [`DEPTH`].
    batch: usize,
    requests: usize,
}

/// The callgrind output file of `run`, under `target/compare/callgrind/`.
fn out_file(run: &Run) -> Res<PathBuf> {
    let dir =
        load::profile_dir()?.parent().ok_or("odd current_exe path")?.join("compare/callgrind");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = match run.peer.name {
        "reactor" => "reactor",
        TRACED => "reactor_traced",
        _ => "epoll_c",
    };
    Ok(dir.join(format!("{name}-x{}-{}.out", run.batch, run.requests)))
}

/// Runs the server under callgrind, sends the requests, stops it; returns its total
/// instructions and the output file.
fn measure(run: &Run) -> Res<(u64, PathBuf)> {
    let file = out_file(run)?;
    let _ = std::fs::remove_file(&file);
    let mut argv: Vec<OsString> = Vec::new();
    if run.peer.name == TRACED {
        argv.extend(["env".into(), format!("{TRACE_ENV}=1").into()]);
    }
    argv.extend([
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--quiet".into(),
        format!("--callgrind-out-file={}", file.display()).into(),
    ]);
    argv.extend(run.peer.argv.iter().cloned());
    let valgrind = Peer { name: run.peer.name, argv, start: Start::PrintsAddr };
    let server = Server::start(&valgrind, false)?;
    let mut s = connect(server.addr)?;
    let batch = REQUEST.repeat(run.batch);
    for _ in 0..run.requests / run.batch {
        s.write_all(&batch).map_err(io_err("write"))?;
        read_responses(&mut s, run.batch)?;
    }
    drop(s);
    server.stop()?;
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:").or_else(|| l.strip_prefix("summary:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{}: no totals line", file.display()))?;
    Ok((total, file))
}

/// Instructions per request of `peer` in a shape, and the larger run's output file.
fn per_request(peer: &Peer, batch: usize, counts: (usize, usize)) -> Res<(f64, PathBuf)> {
    let (small, _) = measure(&Run { peer, batch, requests: counts.0 })?;
    let (large, file) = measure(&Run { peer, batch, requests: counts.1 })?;
    let per = large.saturating_sub(small) as f64 / (counts.1 - counts.0) as f64;
    eprintln!(
        "compare: callgrind: {}, {batch} per write: {} instructions per request",
        peer.name,
        num(per)
    );
    Ok((per, file))
}

/// reactor's hottest functions in `file`, as table rows: own instructions per request.
fn hot_functions(file: &Path, requests: usize) -> Option<String> {
    let out = std::process::Command::new("callgrind_annotate")
        .arg("--inclusive=no")
        .arg(file)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut rows = String::new();
    // Lines like `1,104,000 ( 8.54%)  ???:reactor::http::conn::HttpConn::process [/path]`.
    let functions = text.lines().skip_while(|l| !l.contains("file:function")).skip(2);
    for line in functions.take(HOT) {
        let (count, rest) = line.trim().split_once(' ')?;
        let count: f64 = count.replace(',', "").parse().ok()?;
        let name = rest.split_once(")  ").map_or(rest, |x| x.1);
        let name = name.split(" [").next().unwrap_or(name).trim_start_matches("???:");
        let _ = writeln!(rows, "| `{name}` | {} |", num(count / requests as f64));
    }
    Some(rows)
}

/// The callgrind section.
pub fn run(ctx: &Ctx, http: &(PathBuf, String)) -> Res<Section> {
    let title = "Instructions per HTTP request (callgrind)".to_owned();
    let Some(version) = load::output_of("valgrind", &["--version"]) else {
        let markdown = "**No `valgrind` on PATH (Debian: `apt-get install valgrind`): not \
                        measured.**\n"
            .to_owned();
        let goal = Goal {
            goal: "Callgrind instructions per HTTP request ≤ 1.2× epoll (C)",
            measured: "n/a".into(),
            met: None,
        };
        return Ok(Section { title, markdown, plots: Vec::new(), goals: vec![goal] });
    };
    let counts = if ctx.quick { (480, 1_440) } else { (992, 4_960) };
    let mut peers =
        vec![Peer { name: "reactor", argv: vec![http.0.clone().into()], start: Start::PrintsAddr }];
    let mut out = format!("- {version}; reactor: {}\n", http.1);
    // The same binary with causal tracing on: what a trace record costs per request.
    // (`measure` puts the variable in valgrind's environment, which the server inherits.)
    let traced = vec![http.0.clone().into()];
    peers.push(Peer { name: TRACED, argv: traced, start: Start::PrintsAddr });
    let _ = writeln!(out, "- {TRACED}: the same binary run with `{TRACE_ENV}=1`");
    match &ctx.epoll {
        Ok((bin, note)) => {
            let argv = vec![bin.into(), "http".into()];
            peers.push(Peer { name: "epoll (C)", argv, start: Start::PrintsAddr });
            let _ = writeln!(out, "- epoll (C): `epoll_server http`, {note}");
        }
        Err(e) => load::write_peer(&mut out, "epoll (C)", Err(e)),
    }
    let _ = writeln!(
        out,
        "- on one connection, {} and then {} requests; per request = difference of the totals \
         ÷ {}\n",
        counts.0,
        counts.1,
        counts.1 - counts.0
    );
    let mut figures = Vec::new();
    let mut hot_file = None;
    for peer in &peers {
        let (seq, file) = per_request(peer, 1, counts)?;
        let (pipe, _) = per_request(peer, DEPTH, counts)?;
        if peer.name == "reactor" {
            hot_file = Some(file);
        }
        figures.push((peer.name, seq, pipe));
    }
    let c = figures.iter().find(|f| f.1 != 0.0 && f.0 == "epoll (C)");
    out.push_str("| shape | ");
    out.push_str(&figures.iter().map(|f| f.0).collect::<Vec<_>>().join(" | "));
    out.push_str(if c.is_some() { " | reactor ÷ epoll (C) |\n" } else { " |\n" });
    out.push_str(&"|---".repeat(1 + figures.len() + usize::from(c.is_some())));
    out.push_str("|\n");
    for (shape, pick) in [("sequential (keep-alive)", 0), ("pipelined ×16", 1)] {
        let value = |f: &(&str, f64, f64)| if pick == 0 { f.1 } else { f.2 };
        let _ = write!(out, "| {shape}: instructions per request |");
        for f in &figures {
            let _ = write!(out, " {} |", num(value(f)));
        }
        if let Some(c) = c {
            let _ = write!(out, " {:.2}× |", value(&figures[0]) / value(c));
        }
        out.push('\n');
    }
    if let Some(rows) = hot_file.as_deref().and_then(|f| hot_functions(f, counts.1)) {
        let _ = write!(
            out,
            "\nreactor's hottest functions, sequential, {} requests (own instructions ÷ \
             requests):\n\n| function | instructions per request |\n|---|---|\n{rows}",
            counts.1
        );
    }
    let bars = |pick: usize| -> Vec<plot::Bar> {
        figures
            .iter()
            .map(|f| {
                let v = if pick == 0 { f.1 } else { f.2 };
                plot::Bar {
                    label: f.0.into(),
                    median: v,
                    min: v,
                    max: v,
                    highlight: f.0 == "reactor",
                }
            })
            .collect()
    };
    let plots = vec![Plot {
        name: "callgrind-sequential",
        title: "Instructions per HTTP request, sequential keep-alive".into(),
        svg: plot::bar_chart(
            "Instructions per HTTP request (callgrind), sequential keep-alive",
            "user-space instructions per request (lower is better)",
            &bars(0),
        ),
    }];
    let ratio = c.map(|c| figures[0].1 / c.1);
    let goal = Goal::at_most(
        "Callgrind instructions per HTTP request ≤ 1.2× epoll (C)",
        ratio,
        1.2,
        match (ratio, c) {
            (Some(r), Some(c)) => format!(
                "{} ÷ {} = {r:.2}× (the C server parses nothing: it looks for each head's end \
                 and copies one fixed response)",
                num(figures[0].1),
                num(c.1)
            ),
            _ => "n/a".into(),
        },
    );
    let traced = figures.iter().find(|f| f.0 == TRACED && figures[0].1 != 0.0);
    let traced_ratio = traced.map(|t| t.1 / figures[0].1);
    let traced_goal = Goal::at_most(
        "Causal tracing on: callgrind instructions per HTTP request ≤ 1.03× tracing off",
        traced_ratio,
        1.03,
        match (traced_ratio, traced) {
            (Some(r), Some(t)) => format!("{} ÷ {} = {r:.3}×", num(t.1), num(figures[0].1)),
            _ => "n/a".into(),
        },
    );
    Ok(Section { title, markdown: out, plots, goals: vec![goal, traced_goal] })
}
