//! `--alloc-sites`: where a client's allocations come from. While tracing
//! is on, the counting allocator captures the call stack of every
//! allocation; the report groups them by the first frames outside the
//! allocator and the standard library's collection internals.

use std::backtrace::Backtrace;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

use crate::measure::TRACE;

thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

static SITES: Mutex<Vec<(usize, Backtrace)>> = Mutex::new(Vec::new());

/// Called by the allocator for each allocation while tracing is on.
pub fn record(size: usize) {
    let _ = INSIDE.try_with(|inside| {
        if inside.replace(true) {
            return; // an allocation made while recording one
        }
        let trace = Backtrace::force_capture();
        if let Ok(mut sites) = SITES.lock() {
            sites.push((size, trace));
        }
        inside.set(false);
    });
}

pub fn start() {
    TRACE.store(true, Relaxed);
}

/// Stops tracing and groups the recorded allocations by call site.
pub fn report(requests: u64) -> String {
    TRACE.store(false, Relaxed);
    let sites = std::mem::take(&mut *SITES.lock().unwrap());
    let mut groups: HashMap<String, (u64, u64)> = HashMap::new();
    for (size, trace) in &sites {
        let entry = groups.entry(site_of(trace)).or_default();
        entry.0 += 1;
        entry.1 += *size as u64;
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    let mut out = String::new();
    if std::env::var_os("SITES_RAW").is_some()
        && let Some((_, trace)) = sites.get(sites.len() / 2)
    {
        let _ = writeln!(out, "{trace}");
    }
    let total = sites.len() as f64;
    let _ = writeln!(
        out,
        "{} allocations over {requests} requests = {:.2} per request\n",
        sites.len(),
        total / requests as f64
    );
    for (site, (count, bytes)) in groups {
        let _ = writeln!(
            out,
            "{:6.2}/req {:8.0} B/req  {}",
            count as f64 / requests as f64,
            bytes as f64 / requests as f64,
            site
        );
    }
    out
}

/// The first frames after the allocator shim that are not in the standard
/// library, innermost first, as `function (file:line)`, up to and including
/// the first frame of the benchmark's own client code.
fn site_of(trace: &Backtrace) -> String {
    let text = trace.to_string();
    let mut frames = Vec::new();
    let mut past_shim = false;
    let mut lines = text.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        let Some((index, name)) = line.split_once(": ") else { continue };
        if index.parse::<u32>().is_err() {
            continue;
        }
        let location = match lines.peek() {
            Some(next) if next.starts_with("at ") => lines.next().unwrap_or_default().trim_start_matches("at "),
            _ => "",
        };
        if !past_shim {
            past_shim = name.starts_with("__rust_");
            continue;
        }
        if location.starts_with("/rustc/") || location.is_empty() {
            continue;
        }
        let short = location
            .rsplit_once("/registry/src/")
            .map_or(location, |(_, rest)| rest.split_once('/').map_or(rest, |(_, crate_path)| crate_path));
        let short = short.trim_start_matches("./");
        let short = short.rsplit_once(':').map_or(short, |(file_line, _column)| file_line);
        frames.push(format!("{} ({short})", strip_hash(name)));
        if short.starts_with("benches/") || frames.len() == 6 {
            break;
        }
    }
    frames.join(" <- ")
}

fn strip_hash(name: &str) -> String {
    match name.rfind("::h") {
        Some(i) if name.len() - i == 19 && name[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => name[..i].to_owned(),
        _ => name.to_owned(),
    }
}
