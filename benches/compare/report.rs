//! Samples, medians and ratios, and the two outputs: a markdown report and
//! an SVG bar chart of the ratios (hand-written, no plotting crate).

use std::collections::HashMap;
use std::fmt::Write;
use std::process::Command;
use std::time::Duration;

use crate::clients::{Client, IN_FLIGHT, Job, Workload};

/// What one child measured, plus what the parent saw of the server.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub requests: u64,
    pub failed: u64,
    pub secs: f64,
    pub allocs: u64,
    pub bytes: u64,
    pub cpu_us: u64,
    pub user_us: u64,
    pub maxrss_kb: u64,
    pub first_error: Option<String>,
    /// Server process CPU time while the child ran (sequential runs only).
    pub server_cpu: Duration,
    /// Connections the server accepted while the child ran.
    pub conns: u64,
}

impl Sample {
    pub fn parse(stdout: &str) -> Option<Sample> {
        let mut sample = Sample::default();
        let mut found = false;
        for line in stdout.lines() {
            if let Some(err) = line.strip_prefix("ERROR ") {
                sample.first_error = Some(err.to_owned());
            }
            let Some(fields) = line.strip_prefix("RESULT ") else { continue };
            found = true;
            for field in fields.split(' ') {
                let (key, value) = field.split_once('=')?;
                match key {
                    "requests" => sample.requests = value.parse().ok()?,
                    "failed" => sample.failed = value.parse().ok()?,
                    "secs" => sample.secs = value.parse().ok()?,
                    "allocs" => sample.allocs = value.parse().ok()?,
                    "bytes" => sample.bytes = value.parse().ok()?,
                    "cpu_us" => sample.cpu_us = value.parse().ok()?,
                    "user_us" => sample.user_us = value.parse().ok()?,
                    "maxrss_kb" => sample.maxrss_kb = value.parse().ok()?,
                    _ => {}
                }
            }
        }
        found.then_some(sample)
    }

    /// Requests per second, or MiB/s for the large-body workloads.
    fn throughput(&self, w: Workload) -> f64 {
        let per_sec = self.requests as f64 / self.secs;
        if mib_per_sec(w) { per_sec * w.body_len() as f64 / (1 << 20) as f64 } else { per_sec }
    }

    fn cpu_per_request(&self) -> f64 {
        self.cpu_us as f64 / self.requests as f64
    }

    fn user_per_request(&self) -> f64 {
        self.user_us as f64 / self.requests as f64
    }

    pub fn line(&self, job: Job) -> String {
        let w = job.workload;
        format!(
            "{:<4} {:<8} {:>10.1} {:<5}  cpu {:>7.2} us/req  {:>6.2} allocs/req  conns {:>3}  failed {}",
            w.name(),
            job.client.name(),
            self.throughput(w),
            if mib_per_sec(w) { "MiB/s" } else { "req/s" },
            self.cpu_per_request(),
            self.allocs as f64 / self.requests as f64,
            self.conns,
            self.failed
        )
    }
}

fn mib_per_sec(w: Workload) -> bool {
    matches!(w, Workload::Big | Workload::Chunked)
}

/// Every sample, by workload and client, tagged with its round.
#[derive(Default)]
pub struct Results {
    samples: HashMap<(Workload, Client), Vec<(usize, Sample)>>,
    order: Vec<Workload>,
}

impl Results {
    pub fn push(&mut self, job: Job, round: usize, sample: Sample) {
        if !self.order.contains(&job.workload) {
            self.order.push(job.workload);
        }
        self.samples.entry((job.workload, job.client)).or_default().push((round, sample));
    }

    /// Failed requests outside the race workload (which counts them).
    pub fn hard_failures(&self) -> u64 {
        self.samples
            .iter()
            .filter(|((w, _), _)| !matches!(w, Workload::Race(_)))
            .flat_map(|(_, s)| s.iter().map(|(_, s)| s.failed))
            .sum()
    }

    fn get(&self, w: Workload, c: Client) -> &[(usize, Sample)] {
        self.samples.get(&(w, c)).map_or(&[], Vec::as_slice)
    }

    fn stat(&self, w: Workload, c: Client, f: impl Fn(&Sample) -> f64) -> Option<Stat> {
        Stat::of(self.get(w, c).iter().map(|(_, s)| f(s)).collect())
    }

    /// `f(client) / f(base)` within each round, then summarized.
    fn ratio(&self, w: Workload, c: Client, base: Client, f: impl Fn(&Sample) -> f64) -> Option<Stat> {
        let base: HashMap<usize, f64> = self.get(w, base).iter().map(|(r, s)| (*r, f(s))).collect();
        Stat::of(self.get(w, c).iter().filter_map(|(r, s)| Some(f(s) / base.get(r)?)).collect())
    }

    fn throughput_ratio(&self, w: Workload, c: Client, base: Client) -> Option<Stat> {
        self.ratio(w, c, base, |s| s.throughput(w))
    }

    fn cpu_ratio(&self, w: Workload, c: Client, base: Client) -> Option<Stat> {
        self.ratio(w, c, base, Sample::cpu_per_request)
    }

    fn main_workloads(&self) -> Vec<Workload> {
        self.order.iter().copied().filter(|w| !matches!(w, Workload::Race(_))).collect()
    }

    fn race_workloads(&self) -> Vec<Workload> {
        let mut race: Vec<_> = self.order.iter().copied().filter(|w| matches!(w, Workload::Race(_))).collect();
        race.sort_by_key(|w| if let Workload::Race(ms) = w { *ms } else { 0 });
        race
    }
}

/// Median with min and max.
#[derive(Clone, Copy, Debug)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(mut values: Vec<f64>) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Stat { median, min: values[0], max: values[n - 1] })
    }

    fn show(&self, digits: usize) -> String {
        if (self.max - self.min).abs() < f64::EPSILON * self.median.abs().max(1.0) {
            return num(self.median, digits);
        }
        format!("{} ({}–{})", num(self.median, digits), num(self.min, digits), num(self.max, digits))
    }
}

/// A number with thousands separators and `digits` decimals.
fn num(x: f64, digits: usize) -> String {
    let s = format!("{x:.digits$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, int) = int.strip_prefix('-').map_or(("", int), |i| ("-", i));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Where and how the run happened.
pub struct Meta {
    command: String,
    rounds: usize,
    pinned: bool,
    smoke: bool,
    cpus: usize,
    cpu_model: String,
    kernel: String,
    rustc: String,
    commit: String,
    date: String,
    versions: String,
    load_start: String,
    load_end: String,
    busy_start: String,
    nice: i32,
    duration: Duration,
}

impl Meta {
    pub fn collect(args: &[String], rounds: usize, pinned: bool, smoke: bool) -> Meta {
        let mut command = String::from("cargo bench --bench compare");
        if !args.is_empty() {
            command.push_str(" -- ");
            command.push_str(&args.join(" "));
        }
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Meta {
            command,
            rounds,
            pinned,
            smoke,
            cpus: crate::measure::cpus_online(),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            rustc: run("rustc", &["-V"]),
            commit: commit(),
            date: run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            versions: versions(),
            load_start: loadavg(),
            load_end: String::new(),
            busy_start: busy_processes(),
            // SAFETY: getpriority has no memory effects.
            nice: unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
            duration: Duration::ZERO,
        }
    }

    pub fn finish(mut self, duration: Duration) -> Meta {
        self.load_end = loadavg();
        self.duration = duration;
        self
    }

    pub fn summary(&self) -> String {
        format!(
            "compare: {} CPUs ({}), load average {}, {} round(s){}",
            self.cpus,
            self.cpu_model,
            self.load_start,
            self.rounds,
            if self.smoke { ", smoke mode" } else { "" }
        )
    }
}

fn run(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = run("git", &["-C", dir, "rev-parse", "--short", "HEAD"]);
    let dirty = run("git", &["-C", dir, "status", "--porcelain", "--untracked-files=no", "--", "src", "Cargo.toml"]);
    if dirty == "unknown" { head } else { format!("{head} + uncommitted changes in src/ or Cargo.toml") }
}

/// The processes using the most CPU right now, other than this benchmark.
fn busy_processes() -> String {
    let ps = run("ps", &["-eo", "pcpu=,comm=", "--sort=-pcpu"]);
    let busy: Vec<String> = ps
        .lines()
        .filter_map(|l| l.trim().split_once(' '))
        .filter(|(cpu, comm)| !comm.starts_with("compare") && cpu.parse::<f64>().is_ok_and(|c| c >= 10.0))
        .take(4)
        .map(|(cpu, comm)| format!("{} {cpu}%", comm.trim()))
        .collect();
    if busy.is_empty() { "none above 10%".into() } else { busy.join(", ") }
}

fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Versions of the compared crates, from Cargo.lock.
fn versions() -> String {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap_or_default();
    let mut found = Vec::new();
    for name in ["reqwest", "hyper", "tokio", "ureq", "async-io", "async-net"] {
        let needle = format!("name = \"{name}\"\nversion = \"");
        if let Some(i) = lock.find(&needle) {
            let rest = &lock[i + needle.len()..];
            found.push(format!("{name} {}", &rest[..rest.find('"').unwrap_or(0)]));
        }
    }
    found.join(", ")
}

pub fn markdown(results: &Results, meta: &Meta, clients: &[Client]) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# smolreq side by side: floor, smolreq, reqwest, ureq\n");
    let _ = writeln!(w, "Made by `{}` in {:.0} s, {}.\n", meta.command, meta.duration.as_secs_f64(), meta.date);
    let _ = writeln!(
        w,
        "- Machine: {} CPUs, {}, Linux {}; {}.",
        meta.cpus,
        meta.cpu_model,
        meta.kernel,
        if meta.pinned { "server pinned to CPU 0, each client process to CPU 1" } else { "one CPU: nothing pinned" }
    );
    let _ = writeln!(
        w,
        "- Load average (1, 5, 15 min) at start {}, at end {}; other processes above 10% CPU at start: {}{}.",
        meta.load_start,
        meta.load_end,
        meta.busy_start,
        if meta.nice != 0 { format!("; the benchmark ran at nice {}", meta.nice) } else { String::new() }
    );
    let _ = writeln!(w, "- {}; smolreq at {}; {}.", meta.rustc, meta.commit, meta.versions);
    let _ = writeln!(
        w,
        "- {} round(s), clients interleaved in each round, each client and workload in a fresh process. \
         Cells are medians with (min–max) over rounds; ratios are taken within each round, then summarized.\n",
        meta.rounds
    );
    let _ = writeln!(
        w,
        "Allocations count every alloc, alloc_zeroed and realloc call in the client process during the \
         measured loop, divided by requests; CPU is the client process's user + system time (getrusage) per \
         request (\"of which user\": user time alone, the rest is the kernel); peak RSS is the child's ru_maxrss (the same binary links all four clients). Server CPU is \
         the server process's CPU time over the run divided by the client's loop time (100% = one core busy).\n"
    );
    let _ = writeln!(w, "![throughput and CPU ratios](ratios.svg)\n");
    for workload in results.main_workloads() {
        let requests = results.get(workload, Client::Floor).first().map_or(0, |(_, s)| s.requests);
        let unit = if mib_per_sec(workload) { "MiB/s" } else { "req/s" };
        let _ = writeln!(w, "## {} — {} requests\n", workload.describe(), num(requests as f64, 0));
        let _ = writeln!(
            w,
            "| client | {unit} | × floor | × reqwest | CPU µs/req | of which user | CPU × floor | allocs/req | alloc bytes/req | peak RSS MiB | conns | server CPU |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for &client in clients {
            let Some(thr) = results.stat(workload, client, |s| s.throughput(workload)) else { continue };
            let show = |s: Option<Stat>, d| s.map_or("–".into(), |s| s.show(d));
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                client,
                thr.show(0),
                show(results.throughput_ratio(workload, client, Client::Floor), 2),
                show(results.throughput_ratio(workload, client, Client::Reqwest), 2),
                show(results.stat(workload, client, Sample::cpu_per_request), 2),
                show(results.stat(workload, client, Sample::user_per_request).map(median_only), 2),
                show(results.cpu_ratio(workload, client, Client::Floor), 2),
                show(results.stat(workload, client, |s| s.allocs as f64 / s.requests as f64).map(median_only), 2),
                show(results.stat(workload, client, |s| s.bytes as f64 / s.requests as f64).map(median_only), 0),
                show(results.stat(workload, client, |s| s.maxrss_kb as f64 / 1024.0).map(median_only), 1),
                show(results.stat(workload, client, |s| s.conns as f64).map(median_only), 0),
                results
                    .stat(workload, client, |s| 100.0 * s.server_cpu.as_secs_f64() / s.secs)
                    .map_or("–".into(), |s| format!("{:.0}%", s.median)),
            );
        }
        let _ = writeln!(w);
    }
    race_section(w, results, clients);
    targets_section(w, results);
    md
}

/// Allocation counts hardly vary; show the median alone.
fn median_only(s: Stat) -> Stat {
    Stat { median: s.median, min: s.median, max: s.median }
}

fn race_section(w: &mut String, results: &Results, clients: &[Client]) {
    let race = results.race_workloads();
    if race.is_empty() {
        return;
    }
    let requests = results.get(race[0], Client::Floor).first().map_or(0, |(_, s)| s.requests);
    let _ = writeln!(
        w,
        "## (f) the keep-alive race — failed requests of {requests} per round\n\n\
         The server closes a connection idle for 50 ms: it stops reading at the deadline and closes D ms \
         later, so a request sent in that window meets a FIN or a reset. Each client sends {requests} GETs \
         with pauses of 50 ± 5 ms (the same pseudo-random pauses for every client in a round). The floor \
         reuses its connection with no probe and no retry: its failures count the requests sent after the \
         server's idle deadline, whether the FIN had arrived or not. \
         All race clients of a round run at the same time, each against its own server threads.\n"
    );
    let _ = write!(w, "| FIN delay |");
    for c in clients {
        let _ = write!(w, " {c} |");
    }
    let _ = writeln!(w, "\n|---|{}", "---|".repeat(clients.len()));
    for &workload in &race {
        let Workload::Race(ms) = workload else { continue };
        let _ = write!(w, "| {ms} ms |");
        for &c in clients {
            let samples = results.get(workload, c);
            let total: u64 = samples.iter().map(|(_, s)| s.failed).sum();
            let sent: u64 = samples.iter().map(|(_, s)| s.requests).sum();
            let stat = results.stat(workload, c, |s| s.failed as f64);
            let _ = write!(w, " {} — {total} of {sent} |", stat.map_or("–".into(), |s| s.show(0)));
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "\nFirst error seen per client:\n");
    for &c in clients {
        let error = race.iter().flat_map(|&wl| results.get(wl, c)).find_map(|(_, s)| s.first_error.clone());
        if let Some(error) = error {
            let short: String = error.chars().take(200).collect();
            let _ = writeln!(w, "- {c}: `{}`", short.replace('`', "'"));
        }
    }
    let _ = writeln!(w);
}

fn targets_section(w: &mut String, results: &Results) {
    let _ = writeln!(w, "## Targets (issue 6), smolreq\n");
    let _ = writeln!(w, "| target | measured (median, min–max) | |");
    let _ = writeln!(w, "|---|---|---|");
    let s = Client::Smolreq;
    let mut row = |name: &str, stat: Option<Stat>, ok: fn(f64) -> bool, digits: usize| {
        if let Some(stat) = stat {
            let verdict = if ok(stat.median) { "met" } else { "**missed**" };
            let _ = writeln!(w, "| {name} | {} | {verdict} |", stat.show(digits));
        }
    };
    use Workload::*;
    row("(a) ≥ 0.90 × floor req/s", results.throughput_ratio(Sequential, s, Client::Floor), |x| x >= 0.90, 2);
    row("(a) ≥ 1.8 × reqwest req/s", results.throughput_ratio(Sequential, s, Client::Reqwest), |x| x >= 1.8, 2);
    row("(b) ≥ 1.7 × reqwest req/s", results.throughput_ratio(Concurrent, s, Client::Reqwest), |x| x >= 1.7, 2);
    row(
        &format!("(b) ≤ {IN_FLIGHT} connections"),
        results.stat(Concurrent, s, |s| s.conns as f64),
        |x| x <= IN_FLIGHT as f64,
        0,
    );
    row("(c) ≥ 0.95 × floor MiB/s", results.throughput_ratio(Big, s, Client::Floor), |x| x >= 0.95, 2);
    row("(d) ≥ 0.85 × floor MiB/s", results.throughput_ratio(Chunked, s, Client::Floor), |x| x >= 0.85, 2);
    row(
        "(a) ≤ 6 allocations per request",
        results.stat(Sequential, s, |s| s.allocs as f64 / s.requests as f64),
        |x| x <= 6.0,
        2,
    );
    row("(a) CPU per request ≤ 1.3 × floor", results.cpu_ratio(Sequential, s, Client::Floor), |x| x <= 1.3, 2);
    for workload in results.race_workloads() {
        let Workload::Race(ms) = workload else { continue };
        let total: u64 = results.get(workload, s).iter().map(|(_, s)| s.failed).sum();
        let verdict = if total == 0 { "met" } else { "**missed**" };
        let _ = writeln!(w, "| (f) 0 failed requests, FIN delay {ms} ms | {total} failed in all rounds | {verdict} |");
    }
    let _ = writeln!(w, "\nBinary size and dependency count: see [size.md](size.md) (`scripts/size_compare.sh`).");
}

/// Two panels: throughput relative to the floor, and client CPU per
/// request relative to the floor, for workloads (a)-(e).
pub fn svg(results: &Results, clients: &[Client]) -> String {
    let shown: Vec<Client> = clients.iter().copied().filter(|&c| c != Client::Floor).collect();
    let workloads = results.main_workloads();
    let throughput: Vec<(String, Vec<Option<Stat>>)> = workloads
        .iter()
        .map(|&w| (w.name(), shown.iter().map(|&c| results.throughput_ratio(w, c, Client::Floor)).collect()))
        .collect();
    let cpu: Vec<(String, Vec<Option<Stat>>)> = workloads
        .iter()
        .map(|&w| (w.name(), shown.iter().map(|&c| results.cpu_ratio(w, c, Client::Floor)).collect()))
        .collect();
    let (width, panel) = (860.0, 320.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" viewBox=\"0 0 {width} {}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        2.0 * panel + 40.0,
        2.0 * panel + 40.0
    );
    let names: Vec<&str> = shown.iter().map(|c| c.name()).collect();
    bar_panel(&mut out, 0.0, width, panel, "Throughput ÷ floor (higher is better)", &throughput, &names);
    bar_panel(&mut out, panel + 20.0, width, panel, "Client CPU per request ÷ floor (lower is better)", &cpu, &names);
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555\">medians; whiskers: min–max over rounds; \
         dashed line: the hand-written floor</text>",
        width - 20.0,
        2.0 * panel + 30.0
    );
    out.push_str("</svg>\n");
    out
}

const COLORS: [&str; 4] = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5"];

fn bar_panel(
    out: &mut String,
    y0: f64,
    width: f64,
    height: f64,
    title: &str,
    groups: &[(String, Vec<Option<Stat>>)],
    names: &[&str],
) {
    let (left, right, top, bottom) = (60.0, 20.0, 50.0, 40.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max = groups.iter().flat_map(|(_, v)| v.iter().flatten().map(|s| s.max)).fold(1.0, f64::max);
    let step = if max <= 1.5 {
        0.25
    } else if max <= 4.0 {
        0.5
    } else {
        (max / 8.0).ceil()
    };
    let top_value = (max * 1.08 / step).ceil() * step;
    let y = |v: f64| y0 + top + plot_h * (1.0 - v / top_value);
    let _ =
        writeln!(out, "<text x=\"{left}\" y=\"{}\" font-size=\"15\" font-weight=\"bold\">{title}</text>", y0 + 22.0);
    for (i, name) in names.iter().enumerate() {
        let x = width - right - 110.0 * (names.len() - i) as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{name}</text>",
            y0 + 12.0,
            COLORS[i % COLORS.len()],
            x + 16.0,
            y0 + 22.0
        );
    }
    let mut v = 0.0;
    while v <= top_value + 1e-9 {
        let (x2, yv, tx, ty) = (width - right, y(v), left - 6.0, y(v) + 4.0);
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{yv:.1}\" y2=\"{yv:.1}\" stroke=\"#e2e2e2\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"#555\">{v:.2}</text>"
        );
        v += step;
    }
    let group_w = plot_w / groups.len().max(1) as f64;
    let bar_w = group_w * 0.75 / names.len().max(1) as f64;
    for (g, (label, stats)) in groups.iter().enumerate() {
        let gx = left + group_w * g as f64 + group_w * 0.125;
        for (i, stat) in stats.iter().enumerate() {
            let Some(stat) = stat else { continue };
            let x = gx + bar_w * i as f64;
            let cx = x + bar_w / 2.0;
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>\
                 <line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#222\"/>\
                 <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{:.2}</text>",
                y(stat.median),
                bar_w - 3.0,
                y(0.0) - y(stat.median),
                COLORS[i % COLORS.len()],
                y(stat.min),
                y(stat.max),
                y(stat.max.max(stat.median)) - 5.0,
                stat.median
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">({label})</text>",
            left + group_w * (g as f64 + 0.5),
            y(0.0) + 18.0
        );
    }
    let (x2, one, zero) = (width - right, y(1.0), y(0.0));
    let _ = writeln!(
        out,
        "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{one:.1}\" y2=\"{one:.1}\" stroke=\"#222\" stroke-dasharray=\"6 4\"/>\
         <line x1=\"{left}\" x2=\"{x2}\" y1=\"{zero:.1}\" y2=\"{zero:.1}\" stroke=\"#222\"/>"
    );
}
