//! The end-to-end comparison: `reactor` against the servers its users would pick instead, and
//! against the physical limit, in one run on one machine, written up as `docs/BENCHMARKS.md`
//! with generated SVG plots.
//!
//! ```text
//! cargo bench --bench compare              # everything, about 15 minutes
//! cargo bench --bench compare -- --quick   # everything, shorter windows, about 6 minutes
//! ```
//!
//! Options after `--`:
//!
//! - `--quick`: 3 rounds of 1 s windows instead of 5 rounds of 3 s, fewer requests under
//!   callgrind, fewer timer repetitions.
//! - `--rounds N` (at least 3), `--secs S` (each measured window, 1 to 30 whole seconds).
//! - `--only LIST`: some of the sections, comma-separated: `http`, `scaling`, `echo`,
//!   `callgrind`, `timers`. Such a partial run writes its report under
//!   `target/compare/` instead of `docs/`, so the published page always has every section.
//!
//! Run without `--bench` (as `cargo test --benches` does) it does nothing.
//!
//! # The sections
//!
//! - [`http`]: `examples/http.rs` against a hand-written C epoll server, tokio, nginx (one
//!   worker, if installed) and Node's `http`, under `wrk`: keep-alive, pipelined ×16, memory
//!   per idle connection at 10,000, and (section `scaling`) the same keep-alive load at 10,
//!   100, 1,000 and 10,000 connections.
//! - [`echo`]: `examples/echo.rs` against the C server's echo mode and Node's `net`, under a
//!   load generator of our own that checks every echoed byte.
//! - [`callgrind`]: instructions per HTTP request, reactor against the C server, counted by
//!   `valgrind --tool=callgrind`: the figure that does not drift with the machine's noise.
//! - [`timers`]: arming, cancelling and firing timers through the public API.
//!
//! Each section measures, and says which of the project's performance goals (issue 5) it met;
//! [`main`] collects the goals into the page's first table. Servers run pinned to CPU 0
//! (`taskset -c 0`); this process and every load generator to CPU 1. Everything listens on
//! 127.0.0.1, every run is bounded in time, and every server is stopped (or killed) before
//! the next starts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

mod callgrind;
mod echo;
mod http;
mod load;
mod plot;
mod timers;

use load::Res;

/// The sections, in the order they run and appear.
const SECTIONS: [&str; 5] = ["http", "scaling", "echo", "callgrind", "timers"];

/// Connections the servers must hold at once: the idle-memory scenarios and the largest step
/// of the scaling curve.
const MAX_CONNS: usize = 10_000;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("compare: {err}");
            ExitCode::FAILURE
        }
    }
}

/// What every section needs to know about the run.
pub struct Ctx {
    /// `--quick`.
    pub quick: bool,
    /// Rounds of every timed scenario.
    pub rounds: usize,
    /// Warm-up before every measured window.
    pub warmup: Duration,
    /// The measured window, in whole seconds (as `wrk -d` takes them).
    pub secs: u64,
    /// Whether servers are pinned to CPU 0 and load to CPU 1.
    pub pinned: bool,
    /// Clock ticks per second of the `/proc` CPU times.
    pub tck: f64,
    /// The C peer, or why there is none.
    pub epoll: Res<(PathBuf, String)>,
}

/// What a section hands back: its part of the page.
pub struct Section {
    /// The heading.
    pub title: String,
    /// Everything under the heading but the plots: what ran, and the tables.
    pub markdown: String,
    /// Plots, shown after the markdown.
    pub plots: Vec<Plot>,
    /// The goals this section measured.
    pub goals: Vec<Goal>,
}

/// A generated SVG plot.
pub struct Plot {
    /// File name without `.svg`, unique over the page.
    pub name: &'static str,
    /// Alternative text.
    pub title: String,
    /// The SVG document.
    pub svg: String,
}

/// One of the performance goals, and how the run did.
pub struct Goal {
    /// The goal as the issue states it.
    pub goal: &'static str,
    /// The measured figure, with its parts.
    pub measured: String,
    /// Met, missed, or `None` when it could not be measured (a peer is missing).
    pub met: Option<bool>,
}

impl Goal {
    /// A goal met when `value` is at most `limit`; `show` formats the value.
    pub fn at_most(goal: &'static str, value: Option<f64>, limit: f64, show: String) -> Goal {
        Goal { goal, measured: show, met: value.map(|v| v <= limit) }
    }

    /// A goal met when `value` is at least `limit`.
    pub fn at_least(goal: &'static str, value: Option<f64>, limit: f64, show: String) -> Goal {
        Goal { goal, measured: show, met: value.map(|v| v >= limit) }
    }
}

/// The command line.
struct Args {
    quick: bool,
    rounds: Option<usize>,
    secs: Option<u64>,
    /// The sections to run, in [`SECTIONS`] order.
    only: Vec<&'static str>,
    /// The command, as a user would type it.
    command: String,
}

/// `Some(args)` to run, `None` to do nothing (test mode, `--help`, or a filter that is not
/// ours).
fn parse_args() -> Res<Option<Args>> {
    let mut args = Args {
        quick: false,
        rounds: None,
        secs: None,
        only: SECTIONS.to_vec(),
        command: String::new(),
    };
    let (mut bench_mode, mut filters, mut shown) = (false, Vec::new(), Vec::new());
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => bench_mode = true,
            "--quick" => {
                args.quick = true;
                shown.push(arg.clone());
            }
            "--rounds" | "--secs" | "--only" => {
                let value = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
                shown.extend([arg.clone(), value.clone()]);
                match arg.as_str() {
                    "--rounds" => {
                        let n = value.parse().map_err(|_| format!("bad --rounds {value:?}"))?;
                        if n < 3 {
                            return Err("--rounds must be at least 3".into());
                        }
                        args.rounds = Some(n);
                    }
                    "--secs" => {
                        let s = value.parse().map_err(|_| format!("bad --secs {value:?}"))?;
                        if !(1..=30).contains(&s) {
                            return Err("--secs must be 1 to 30 (whole seconds)".into());
                        }
                        args.secs = Some(s);
                    }
                    _ => {
                        let wanted: Vec<&str> = value.split(',').map(str::trim).collect();
                        if let Some(bad) = wanted.iter().find(|w| !SECTIONS.contains(w)) {
                            return Err(format!(
                                "--only: no section {bad:?} (sections: {})",
                                SECTIONS.join(", ")
                            ));
                        }
                        args.only = SECTIONS.into_iter().filter(|s| wanted.contains(s)).collect();
                    }
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: cargo bench --bench compare [-- [--quick] [--rounds N] [--secs S] \
                     [--only {}]]",
                    SECTIONS.join(",")
                );
                return Ok(None);
            }
            flag if flag.starts_with('-') => eprintln!("compare: ignoring option {flag}"),
            filter => filters.push(filter.to_owned()),
        }
    }
    if !bench_mode {
        println!("compare: nothing to do outside `cargo bench --bench compare`");
        return Ok(None);
    }
    if !filters.is_empty() && !filters.iter().any(|f| "compare".contains(f.as_str())) {
        return Ok(None);
    }
    args.command = "cargo bench --bench compare".into();
    if !shown.is_empty() {
        args.command.push_str(" -- ");
        args.command.push_str(&shown.join(" "));
    }
    Ok(Some(args))
}

fn run() -> Res<()> {
    let Some(args) = parse_args()? else { return Ok(()) };
    let started = Instant::now();
    let load_before = load::load_average();
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    // Built before pinning, so that the builds may use both cores.
    let epoll = load::epoll_binary();
    if let Err(e) = &epoll {
        eprintln!("compare: no epoll (C) column: {e}");
    }
    let builds = Builds::new(&args.only);
    let (pinned, pinning) = load::pin_self(cpus);
    load::raise_fd_limit(MAX_CONNS)?;
    let (rounds, warmup, secs) = if args.quick { (3, 0.25, 1) } else { (5, 0.5, 3) };
    let ctx = Ctx {
        quick: args.quick,
        rounds: args.rounds.unwrap_or(rounds),
        warmup: Duration::from_secs_f64(warmup),
        secs: args.secs.unwrap_or(secs),
        pinned,
        tck: load::clk_tck(),
        epoll,
    };

    let mut sections = Vec::new();
    for &name in &args.only {
        let section = match name {
            "http" => http::run(&ctx, &builds.http()?, &builds.tokio, false),
            "scaling" => http::run(&ctx, &builds.http()?, &builds.tokio, true),
            "echo" => echo::run(&ctx, &builds.echo()?),
            "callgrind" => callgrind::run(&ctx, &builds.http()?),
            _ => timers::run(&ctx),
        };
        sections.push(section.map_err(|e| format!("{name}: {e}"))?);
    }

    let everything = args.only.len() == SECTIONS.len();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (page, plots) = if everything {
        (root.join("docs/BENCHMARKS.md"), root.join("docs/benchmarks"))
    } else {
        let dir = load::profile_dir()?.parent().ok_or("odd current_exe path")?.join("compare");
        (dir.join("BENCHMARKS.md"), dir.join("benchmarks"))
    };
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(
        "Generated by the command below (`benches/compare/`), which runs every server alone, \
         pinned, in interleaved rounds, and writes this page and its plots; nothing here is \
         typed by hand. Judge by the server's CPU time per request and by instructions per \
         request: on two cores a load generator saturates before a good server does, so \
         requests per second say as much about the generator as about the server.\n\n",
    );
    load::write_setup(&mut out, &args.command, cpus, &pinning, &load_before);
    let _ = writeln!(out, "- took {:.0} s in all", started.elapsed().as_secs_f64());
    out.push_str("\n## The goals\n\n| goal | measured | met |\n|---|---|---|\n");
    for goal in sections.iter().flat_map(|s| &s.goals) {
        let met = match goal.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {} | {} | {met} |", goal.goal, goal.measured);
    }
    std::fs::create_dir_all(&plots).map_err(|e| format!("{}: {e}", plots.display()))?;
    for section in &sections {
        let _ = write!(out, "\n## {}\n\n{}", section.title, section.markdown);
        for plot in &section.plots {
            let file = plots.join(format!("{}.svg", plot.name));
            std::fs::write(&file, &plot.svg).map_err(|e| format!("{}: {e}", file.display()))?;
            let _ = writeln!(out, "\n![{}](benchmarks/{}.svg)", plot.title, plot.name);
        }
    }
    std::fs::write(&page, &out).map_err(|e| format!("{}: {e}", page.display()))?;
    print!("{out}");
    eprintln!("compare: wrote {} and its plots in {}", page.display(), plots.display());
    Ok(())
}

/// The reactor examples under test and the tokio peer, built once before the run (and before
/// pinning, so that the builds may use both cores), for the sections that need them.
struct Builds {
    http: Option<Res<(PathBuf, String)>>,
    echo: Option<Res<(PathBuf, String)>>,
    /// `Err` says why there is no tokio column (also when no section needs it).
    tokio: Res<(PathBuf, String)>,
}

impl Builds {
    fn new(only: &[&str]) -> Builds {
        let wants = |names: &[&str]| only.iter().any(|s| names.contains(s));
        let http = wants(&["http", "scaling", "callgrind"])
            .then(|| load::example_binary("HTTP_BIN", "http"));
        let echo = wants(&["echo"]).then(|| load::example_binary("ECHO_BIN", "echo"));
        let tokio = if wants(&["http", "scaling"]) {
            http::tokio_binary()
        } else {
            Err("not needed".into())
        };
        if let (true, Err(e)) = (wants(&["http", "scaling"]), &tokio) {
            eprintln!("compare: no tokio column: {e}");
        }
        Builds { http, echo, tokio }
    }

    fn http(&self) -> Res<(PathBuf, String)> {
        self.http.clone().unwrap_or_else(|| Err("the http example was not built".into()))
    }

    fn echo(&self) -> Res<(PathBuf, String)> {
        self.echo.clone().unwrap_or_else(|| Err("the echo example was not built".into()))
    }
}
