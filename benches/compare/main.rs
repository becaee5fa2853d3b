//! Side-by-side benchmark of smolreq against reqwest, ureq and a
//! hand-written floor, over one loopback server.
//!
//! ```text
//! cargo bench --bench compare                 # full run, writes docs/bench/
//! cargo bench --bench compare -- --smoke      # a few seconds, writes nothing
//! cargo bench --bench compare -- --rounds 7 --out /tmp/bench
//! cargo bench --bench compare -- --only a,c --clients floor,smolreq
//! cargo bench --bench compare -- --alloc-sites smolreq a 2000
//! cargo bench --bench compare -- --serve 60   # only the server, to profile one client by hand:
//! SMOLREQ_BENCH_CHILD="smolreq a 20000 PORT 0 0" perf record -g target/release/deps/compare-*
//! ```
//!
//! The parent process runs the server (pinned to CPU 0) and starts one
//! fresh child process per client and workload (pinned to CPU 1): the
//! benchmark binary itself, re-executed with `SMOLREQ_BENCH_CHILD` set.
//! Rounds interleave every client; the report gives medians with min-max
//! and ratios computed within each round.

mod clients;
mod measure;
mod report;
mod server;
mod sites;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clients::{Client, Job, Meter, Workload};
use server::{Mode, Server};

#[global_allocator]
static GLOBAL: measure::CountingAlloc = measure::CountingAlloc;

const CHILD_ENV: &str = "SMOLREQ_BENCH_CHILD";
/// The server closes a connection idle this long, in workload (f).
const RACE_IDLE: Duration = Duration::from_millis(50);
/// FIN delays of workload (f), in ms.
const FIN_DELAYS: [u64; 3] = [0, 1, 2];

/// Requests per child for each workload.
#[derive(Clone, Copy)]
struct Counts {
    sequential: u64,
    concurrent: u64,
    big: u64,
    chunked: u64,
    post: u64,
    race: u64,
}

const FULL: Counts =
    Counts { sequential: 20_000, concurrent: 50_000, big: 300, chunked: 3_000, post: 5_000, race: 300 };
const SMOKE: Counts = Counts { sequential: 300, concurrent: 1_000, big: 5, chunked: 50, post: 100, race: 6 };

impl Counts {
    fn of(&self, w: Workload) -> u64 {
        match w {
            Workload::Sequential => self.sequential,
            Workload::Concurrent => self.concurrent,
            Workload::Big => self.big,
            Workload::Chunked => self.chunked,
            Workload::Post => self.post,
            Workload::Race(_) => self.race,
        }
    }
}

struct Options {
    smoke: bool,
    rounds: usize,
    out: Option<PathBuf>,
    workloads: Vec<String>,
    clients: Vec<Client>,
    alloc_sites: Option<(Client, Workload, u64)>,
    serve: Option<u64>,
    args: Vec<String>,
}

fn parse_args() -> Options {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut opts = Options {
        smoke: false,
        rounds: 5,
        out: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/bench")),
        workloads: ["a", "b", "c", "d", "e", "f"].map(String::from).to_vec(),
        clients: Client::ALL.to_vec(),
        alloc_sites: None,
        serve: None,
        args: args.clone(),
    };
    let mut it = args.into_iter();
    let usage = "usage: compare [--smoke] [--rounds N] [--out DIR | --no-out] [--only a,b,..,f] \
                 [--clients floor,smolreq,reqwest,ureq] [--alloc-sites CLIENT WORKLOAD REQUESTS] [--serve SECONDS]";
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value\n{usage}"));
        match arg.as_str() {
            "--smoke" => {
                opts.smoke = true;
                opts.rounds = 1;
                opts.out = None;
            }
            "--rounds" => opts.rounds = value().parse().expect("--rounds N"),
            "--out" => opts.out = Some(PathBuf::from(value())),
            "--no-out" => opts.out = None,
            "--only" => opts.workloads = value().split(',').map(String::from).collect(),
            "--clients" => {
                opts.clients = value().split(',').map(|c| Client::parse(c).expect("a client name")).collect();
                if !opts.clients.contains(&Client::Floor) {
                    opts.clients.insert(0, Client::Floor); // ratios need it
                }
            }
            "--alloc-sites" => {
                let client = Client::parse(&value()).expect("a client name");
                let workload = Workload::parse(&value()).expect("a workload: a..e or f0/f1/f2");
                opts.alloc_sites = Some((client, workload, value().parse().expect("a request count")));
            }
            "--serve" => opts.serve = Some(value().parse().expect("--serve SECONDS")),
            _ => panic!("unknown argument {arg}\n{usage}"),
        }
    }
    opts
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let opts = parse_args();
    let pinned = measure::pin_to(0);
    let keep_alive = Server::start(Mode::KeepAlive);
    if let Some(seconds) = opts.serve {
        println!("serving on 127.0.0.1:{} (CPU 0) for {seconds} s", keep_alive.port);
        std::thread::sleep(Duration::from_secs(seconds));
        return;
    }
    if let Some((client, workload, requests)) = opts.alloc_sites {
        let port = match workload {
            Workload::Race(ms) => race_server(ms).port,
            _ => keep_alive.port,
        };
        let job = Job { client, workload, requests, port, seed: 1 };
        // The child prints the sites; its own counts include the tracing.
        run_child(job, true);
        return;
    }
    let race_servers: Vec<(u64, Server)> = FIN_DELAYS.iter().map(|&ms| (ms, race_server(ms))).collect();
    let counts = if opts.smoke { SMOKE } else { FULL };
    let meta = report::Meta::collect(&opts.args, opts.rounds, pinned, opts.smoke);
    eprintln!("{}", meta.summary());
    let started = Instant::now();
    let mut results = report::Results::default();
    let sequential_workloads: Vec<Workload> = ["a", "b", "c", "d", "e"]
        .iter()
        .filter(|w| opts.workloads.iter().any(|o| o == *w))
        .map(|w| Workload::parse(w).unwrap())
        .collect();
    let race = opts.workloads.iter().any(|w| w == "f");
    for round in 0..opts.rounds {
        eprintln!("== round {}/{}", round + 1, opts.rounds);
        for &workload in &sequential_workloads {
            // Rotate the order each round so no client always runs first.
            let mut order = opts.clients.clone();
            let shift = round % order.len();
            order.rotate_left(shift);
            for client in order {
                let job =
                    Job { client, workload, requests: counts.of(workload), port: keep_alive.port, seed: round as u64 };
                let cpu0 = measure::rusage().cpu;
                let accepted0 = keep_alive.accepted();
                let mut sample = run_child(job, false);
                sample.server_cpu = measure::rusage().cpu.saturating_sub(cpu0);
                sample.conns = keep_alive.accepted() - accepted0;
                eprintln!("   {}", sample.line(job));
                results.push(job, round, sample);
            }
        }
        if race {
            // Each race child sleeps ~50 ms between requests and barely
            // uses a CPU, so all of them run at once, each on its own server.
            let children: Vec<_> = race_servers
                .iter()
                .flat_map(|(ms, server)| opts.clients.iter().map(move |&c| (c, *ms, server.port)))
                .map(|(client, ms, port)| {
                    let job = Job {
                        client,
                        workload: Workload::Race(ms),
                        requests: counts.race,
                        port,
                        seed: 0x9e37_79b9_7f4a_7c15 ^ (round as u64 + 1),
                    };
                    (job, spawn_child(job, false))
                })
                .collect();
            for (job, child) in children {
                let sample = wait_child(job, child);
                eprintln!("   {}", sample.line(job));
                results.push(job, round, sample);
            }
        }
    }
    let meta = meta.finish(started.elapsed());
    let markdown = report::markdown(&results, &meta, &opts.clients);
    println!("{markdown}");
    if let Some(dir) = &opts.out {
        std::fs::create_dir_all(dir).expect("create the output directory");
        std::fs::write(dir.join("report.md"), &markdown).expect("write report.md");
        std::fs::write(dir.join("ratios.svg"), report::svg(&results, &opts.clients)).expect("write ratios.svg");
        eprintln!("wrote {} and ratios.svg", dir.join("report.md").display());
    }
    if results.hard_failures() > 0 {
        eprintln!("some requests of workloads (a)-(e) failed");
        std::process::exit(1);
    }
}

fn race_server(fin_delay_ms: u64) -> Server {
    Server::start(Mode::IdleClose { idle: RACE_IDLE, fin_delay: Duration::from_millis(fin_delay_ms) })
}

fn spawn_child(job: Job, trace: bool) -> std::process::Child {
    let spec = format!(
        "{} {} {} {} {} {}",
        job.client,
        job.workload.name(),
        job.requests,
        job.port,
        job.seed,
        u8::from(trace)
    );
    Command::new(std::env::current_exe().expect("own executable"))
        .env(CHILD_ENV, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a child process")
}

fn wait_child(job: Job, child: std::process::Child) -> report::Sample {
    let output = child.wait_with_output().expect("wait for the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        panic!("{} {} failed ({}): {stdout}", job.client, job.workload.describe(), output.status);
    }
    report::Sample::parse(&stdout)
        .unwrap_or_else(|| panic!("no result from {} {}: {stdout}", job.client, job.workload.name()))
}

fn run_child(job: Job, trace: bool) -> report::Sample {
    wait_child(job, spawn_child(job, trace))
}

/// A child process: run one job on CPU 1 and print what it cost.
fn child(spec: &str) {
    measure::pin_to(1);
    let fields: Vec<&str> = spec.split(' ').collect();
    let [client, workload, requests, port, seed, trace] = fields[..] else { panic!("bad child spec {spec:?}") };
    let job = Job {
        client: Client::parse(client).expect("client"),
        workload: Workload::parse(workload).expect("workload"),
        requests: requests.parse().expect("requests"),
        port: port.parse().expect("port"),
        seed: seed.parse().expect("seed"),
    };
    let mut meter = Meter::new((trace == "1").then_some(job.requests));
    let outcome = clients::run(job, &mut meter);
    let (allocs, bytes, cpu, user) = outcome.cost.expect("the run was measured");
    let maxrss_kb = measure::rusage().max_rss_kb;
    println!(
        "RESULT requests={} failed={} secs={:.9} allocs={allocs} bytes={bytes} cpu_us={} user_us={} maxrss_kb={maxrss_kb}",
        job.requests,
        outcome.failed,
        outcome.elapsed.as_secs_f64(),
        cpu.as_micros(),
        user.as_micros(),
    );
    if let Some(err) = outcome.first_error {
        println!("ERROR {}", err.replace('\n', " "));
    }
}
