//! The bench's table: each figure beside its target and whether it meets it, printed once and
//! written as JSON (`target/bench/bench.json`, or `PASSPORT_BENCH_JSON`); plus what the bench reads of
//! the operator's process in /proc (resident memory, CPU time).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// Whether a figure must stay at most or at least its target; `Info` figures have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    AtMost,
    AtLeast,
    Info,
}

#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub goal: Goal,
    pub target: f64,
}

impl Figure {
    pub fn met(&self) -> Option<bool> {
        match self.goal {
            Goal::AtMost => Some(self.value <= self.target),
            Goal::AtLeast => Some(self.value >= self.target),
            Goal::Info => None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Table {
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
}

impl Table {
    pub fn at_most(&mut self, name: impl Into<String>, value: f64, unit: &'static str, target: f64) {
        self.push(name, value, unit, Goal::AtMost, target);
    }

    pub fn at_least(&mut self, name: impl Into<String>, value: f64, unit: &'static str, target: f64) {
        self.push(name, value, unit, Goal::AtLeast, target);
    }

    pub fn info(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.push(name, value, unit, Goal::Info, 0.0);
    }

    fn push(&mut self, name: impl Into<String>, value: f64, unit: &'static str, goal: Goal, target: f64) {
        let figure = Figure {
            name: name.into(),
            value,
            unit,
            goal,
            target,
        };
        eprintln!("BENCH {}", row(&figure));
        self.figures.push(figure);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("BENCH note: {note}");
        self.notes.push(note);
    }

    pub fn all_met(&self) -> bool {
        self.figures.iter().all(|f| f.met() != Some(false))
    }

    /// The table as Markdown, one figure a row.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| figure | value | target | |\n|---|---:|---:|---|\n");
        for figure in &self.figures {
            out.push_str(&format!("| {} |\n", row(figure)));
        }
        for note in &self.notes {
            out.push_str(&format!("\n- {note}"));
        }
        out
    }

    /// Prints the table and writes it as JSON; returns the JSON's path.
    pub fn publish(&self, size: &str, machine: &str) -> Result<PathBuf> {
        println!("\n{}\n\nmachine: {machine}\n", self.markdown());
        let figures: Vec<Value> = self
            .figures
            .iter()
            .map(|f| {
                json!({
                    "name": f.name, "value": f.value, "unit": f.unit,
                    "goal": match f.goal { Goal::AtMost => "<=", Goal::AtLeast => ">=", Goal::Info => "" },
                    "target": (f.goal != Goal::Info).then_some(f.target),
                    "met": f.met(),
                })
            })
            .collect();
        let document = json!({
            "size": size, "machine": machine, "allMet": self.all_met(),
            "figures": figures, "notes": self.notes, "markdown": self.markdown(),
        });
        let path = std::env::var_os("PASSPORT_BENCH_JSON").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/bench.json"),
            PathBuf::from,
        );
        std::fs::create_dir_all(path.parent().context("JSON path without a directory")?)?;
        std::fs::write(&path, serde_json::to_string_pretty(&document)?)?;
        Ok(path)
    }
}

fn row(f: &Figure) -> String {
    let (target, verdict) = match (f.goal, f.met()) {
        (Goal::AtMost, Some(met)) => (format!("≤ {} {}", f.target, f.unit), verdict(met)),
        (Goal::AtLeast, Some(met)) => (format!("≥ {} {}", f.target, f.unit), verdict(met)),
        _ => ("—".to_owned(), "info"),
    };
    format!("{} | {:.3} {} | {target} | {verdict}", f.name, f.value, f.unit)
}

fn verdict(met: bool) -> &'static str {
    if met { "pass" } else { "FAIL" }
}

/// The `q`-quantile (0..=1) of `samples` in milliseconds, nearest rank.
pub fn quantile_ms(samples: &[Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// The process's resident memory in MiB (VmRSS).
pub fn rss_mib(pid: u32) -> Result<f64> {
    status_mib(pid, "VmRSS:")
}

/// A memory line of /proc/<pid>/status in MiB, e.g. `RssAnon:` (the heap and stacks, without the
/// mapped executable that `RssFile` counts).
pub fn status_mib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .with_context(|| format!("no {field}"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib / 1024.0)
}

/// The process's CPU time so far (user + system), in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let after = stat.rsplit_once(')').context("no command in stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `nproc` cores, the CPU model and memory of this machine.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    // Others' work on the machine shows in every latency: the 1-minute load average at the end.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    let profile = std::env::var("PASSPORT_BENCH_PROFILE").unwrap_or_else(|_| "debug".to_owned());
    format!(
        "{cores} cores ({model}), {mem_gib:.0} GiB RAM, load average {load} at the end; operator and \
         CLI in the {profile} profile, harness in the debug profile"
    )
}
