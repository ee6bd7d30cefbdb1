//! The Logbook's delivery to an external audit sink (leader only, beside the controllers): every
//! entry of every AccessRequest's durable record (`status.logbook`) goes out at least once, in order
//! per request, as a CloudEvent 1.0 in structured JSON, POSTed to `--logbook-sink` and/or printed on
//! stdout (`--logbook-stdout`). Once the sink takes entries, `status.logbook.delivered` advances with
//! a JSON patch that tests the old value, so two writers can never move it backwards.
//!
//! The backlog (entries not yet delivered, over all requests) is exported as metrics and through
//! [`AuditGate`], which the AccessRequest controller consults to refuse new grants (fail closed)
//! while the sink lags too far behind.

pub mod backoff;
pub mod event;
pub mod gate;
pub mod schedule;
pub mod sink;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    future::Future,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::{reflector::Store, watcher},
};
use passport_crds::AccessRequest;
use tokio::{sync::Notify, task::JoinSet};

pub use gate::AuditGate;
use schedule::{Report, Schedule, Waiting};
use sink::{Failure, HttpSink};

use crate::metrics::LogbookMetrics;

/// Requests delivered side by side.
const MAX_IN_FLIGHT: usize = 4;
/// Entries one request sends per turn before the others get theirs.
const TURN: usize = 16;
/// At most one warning about failing deliveries this often.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// How long a `delivered` write may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The Logbook sink's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Deliver every Logbook record as a CloudEvent (structured JSON) by HTTP POST to this http(s)
    /// URL, at least once and in order per request.
    #[arg(long = "logbook-sink", env = "PASSPORT_LOGBOOK_SINK", value_parser = sink_url)]
    pub sink: Option<reqwest::Url>,
    /// PEM bundle of the CA(s) the sink's certificate chains to (instead of the system's roots).
    #[arg(long = "logbook-sink-ca", env = "PASSPORT_LOGBOOK_SINK_CA", requires = "sink")]
    pub sink_ca: Option<PathBuf>,
    /// Secret in the operator's namespace whose key `authorization` is sent as the Authorization
    /// header (e.g. `Bearer …`); never logged.
    #[arg(
        long = "logbook-sink-auth-secret",
        env = "PASSPORT_LOGBOOK_SINK_AUTH_SECRET",
        requires = "sink"
    )]
    pub sink_auth_secret: Option<String>,
    /// Also print every Logbook record (the CloudEvent) as one JSON line on stdout; without
    /// --logbook-sink, printing counts as delivery.
    #[arg(long = "logbook-stdout", env = "PASSPORT_LOGBOOK_STDOUT")]
    pub stdout: bool,
    /// With a sink, refuse new grants while this many records or more await delivery.
    #[arg(
        long = "logbook-backlog-limit",
        env = "PASSPORT_LOGBOOK_BACKLOG_LIMIT",
        default_value_t = 10_000
    )]
    pub backlog_limit: u64,
    /// This cluster's name in the records' `source` (`/passport/<cluster>/<namespace>`).
    #[arg(
        long = "cluster-name",
        env = "PASSPORT_CLUSTER_NAME",
        default_value = "kubernetes"
    )]
    pub cluster_name: String,
}

fn sink_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|err| err.to_string())?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("an http:// or https:// URL with a host".to_owned()),
    }
}

/// Where records go and how `delivered` is written.
struct Delivery {
    client: Client,
    http: Option<HttpSink>,
    stdout: bool,
    source: String,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("http", &self.http)
            .field("stdout", &self.stdout)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The delivery worker, configured; [`LogbookSink::run`] it while leading.
#[derive(Debug)]
pub struct LogbookSink {
    delivery: Arc<Delivery>,
    gate: AuditGate,
}

impl LogbookSink {
    /// `None` without `--logbook-sink` and `--logbook-stdout`: nothing is delivered and
    /// `delivered` is left alone. Fails on a bad CA bundle.
    pub fn new(client: Client, namespace: &str, args: &SinkArgs) -> anyhow::Result<Option<Self>> {
        if args.sink.is_none() && !args.stdout {
            return Ok(None);
        }
        let http = match &args.sink {
            Some(url) => {
                let auth = args
                    .sink_auth_secret
                    .as_ref()
                    .map(|name| (Api::<Secret>::namespaced(client.clone(), namespace), name.clone()));
                Some(HttpSink::new(url.clone(), args.sink_ca.as_deref(), auth).context("--logbook-sink")?)
            }
            None => None,
        };
        // Printing on stdout cannot lag: only an HTTP sink can hold grants back.
        let gate = if http.is_some() {
            AuditGate::new(args.backlog_limit)
        } else {
            AuditGate::stdout_only()
        };
        Ok(Some(Self {
            delivery: Arc::new(Delivery {
                client,
                http,
                stdout: args.stdout,
                source: event::source(&args.cluster_name, namespace),
            }),
            gate,
        }))
    }

    pub fn gate(&self) -> AuditGate {
        self.gate.clone()
    }

    /// Delivers the undelivered entries of every AccessRequest in `reader` until `stop` resolves,
    /// woken by `feed` (which must observe the cache's events).
    pub async fn run(
        self,
        metrics: LogbookMetrics,
        reader: Store<AccessRequest>,
        feed: SinkFeed,
        stop: impl Future<Output = ()>,
    ) {
        let Self { delivery, gate } = self;
        let mut synced = feed.synced.subscribe();
        let SinkFeed { changed, orphans, .. } = feed;
        let mut stop = std::pin::pin!(stop);
        tokio::select! {
            () = &mut stop => return,
            ready = synced.wait_for(|synced| *synced) => if ready.is_err() { return; },
        }
        tracing::info!(source = %delivery.source, "Logbook sink: delivering");
        let mut schedule = Schedule::default();
        let mut tasks: JoinSet<Report> = JoinSet::new();
        // Which request each turn serves, to end its turn even if the task dies.
        let mut turns: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_warning: Option<Instant> = None;
        loop {
            let now = Instant::now();
            // Borrowed from the cache's snapshot: nothing is copied per request on each pass.
            let state = reader.state();
            let orphaned: Vec<(String, Arc<AccessRequest>)> = lock(&orphans)
                .iter()
                .map(|(uid, request)| (uid.clone(), request.clone()))
                .collect();
            let mut requests: HashMap<&str, (&Arc<AccessRequest>, bool)> = orphaned
                .iter()
                .map(|(uid, request)| (uid.as_str(), (request, true)))
                .collect();
            for request in &state {
                if let Some(uid) = request.metadata.uid.as_deref() {
                    requests.insert(uid, (request, false));
                }
            }
            let (mut backlog, mut oldest, mut waiting) = (0u64, None::<i64>, Vec::new());
            for (uid, (request, _)) in &requests {
                let mut pending = undelivered(request, schedule.acked(uid)).peekable();
                let Some(first) = pending.peek() else { continue };
                let first = first.time.0.as_second();
                backlog += pending.count() as u64;
                oldest = Some(oldest.map_or(first, |o| o.min(first)));
                waiting.push(Waiting {
                    uid: (*uid).to_owned(),
                    oldest: first,
                });
            }
            gate.set_backlog(backlog);
            metrics.backlog.set(i64::try_from(backlog).unwrap_or(i64::MAX));
            let age = oldest.map_or(0, |o| Timestamp::now().as_second().saturating_sub(o).max(0));
            #[allow(clippy::cast_precision_loss)]
            metrics.oldest_undelivered_seconds.set(age as f64);
            schedule.retain(|uid| requests.contains_key(uid));
            {
                let mut orphans = lock(&orphans);
                orphans.retain(|uid, request| undelivered(request, schedule.acked(uid)).next().is_some());
            }
            for uid in schedule.pick(&waiting, now, MAX_IN_FLIGHT.saturating_sub(tasks.len())) {
                let Some((request, orphan)) = requests.get(uid.as_str()) else {
                    continue;
                };
                let (request, orphan) = (Arc::clone(request), *orphan);
                let (delivery, metrics, acked) = (delivery.clone(), metrics.clone(), schedule.acked(&uid));
                let task =
                    tasks.spawn(async move { turn(&delivery, &metrics, &request, acked, orphan).await });
                turns.insert(task.id(), uid);
            }
            let retry = schedule.next_retry();
            tokio::select! {
                () = &mut stop => break,
                () = changed.notified() => {}
                Some(done) = tasks.join_next_with_id() => match done {
                    Ok((id, report)) => {
                        turns.remove(&id);
                        let now = Instant::now();
                        if let Some(failure) = report.failure {
                            tracing::debug!(uid = %report.uid, reason = failure.as_str(), "Logbook sink: delivery failed; backing off");
                            // One warning per interval, not one per request, however many fail.
                            if last_warning.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
                                last_warning = Some(now);
                                tracing::warn!(reason = failure.as_str(), backlog = gate.backlog(), "Logbook sink: deliveries failing; retrying with backoff");
                            }
                        } else if report.sent > 0 && last_warning.take().is_some() {
                            tracing::info!(backlog = gate.backlog(), "Logbook sink: delivering again");
                        }
                        schedule.done(&report, now);
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "Logbook sink: a delivery task failed");
                        if let Some(uid) = turns.remove(&err.id()) {
                            let acked = schedule.acked(&uid);
                            let report = Report { uid, acked, sent: 0, failure: Some(Failure::Build) };
                            schedule.done(&report, Instant::now());
                        }
                    }
                },
                () = sleep_until(retry) => {}
                _ = tick.tick() => {}
            }
        }
        tasks.abort_all();
    }
}

/// What wakes the sink: any change to the AccessRequest cache. It also keeps the requests deleted
/// with entries still undelivered, delivered from memory (no status left to advance).
#[derive(Debug, Clone)]
pub struct SinkFeed {
    changed: Arc<Notify>,
    orphans: Arc<Mutex<HashMap<String, Arc<AccessRequest>>>>,
    /// Whether the cache has been filled once. Not `Store::wait_until_ready`: that wakes only the
    /// last of its waiters, and the controller waits on the same cache.
    synced: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for SinkFeed {
    fn default() -> Self {
        Self {
            changed: Arc::default(),
            orphans: Arc::default(),
            synced: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl SinkFeed {
    pub fn observe(&self, event: &watcher::Event<AccessRequest>) {
        if matches!(event, watcher::Event::InitDone) {
            self.synced.send_replace(true);
        }
        if let watcher::Event::Delete(request) = event
            && let Some(uid) = request.metadata.uid.clone()
            && undelivered(request, 0).next().is_some()
        {
            lock(&self.orphans).insert(uid, Arc::new(request.clone()));
        }
        self.changed.notify_one();
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The request's entries past `delivered` and past `acked` (what this process saw the sink take).
fn undelivered(
    request: &AccessRequest,
    acked: u64,
) -> impl Iterator<Item = &passport_crds::logbook::LogbookEntry> {
    let logbook = request.status.as_ref().and_then(|s| s.logbook.as_ref());
    let after = logbook.map_or(0, |l| l.delivered).max(acked);
    logbook
        .into_iter()
        .flat_map(|l| l.entries.iter())
        .filter(move |e| e.seq > after)
}

/// One request's turn: up to [`TURN`] entries in order, then `delivered` advanced to the last one
/// the sink took.
async fn turn(
    delivery: &Delivery,
    metrics: &LogbookMetrics,
    request: &AccessRequest,
    acked: u64,
    orphan: bool,
) -> Report {
    let uid = request.metadata.uid.clone().unwrap_or_default();
    let mut report = Report {
        uid,
        acked,
        sent: 0,
        failure: None,
    };
    let Some(view) = event::RequestView::of(request) else {
        return report;
    };
    let entries: Vec<_> = undelivered(request, acked).take(TURN).cloned().collect();
    for entry in entries {
        metrics.delivery_attempts.inc();
        let result = match event::build(&delivery.source, &view, &entry).map(|e| event::to_json(&e)) {
            Ok(Ok(line)) => send(delivery, &line).await,
            Ok(Err(err)) => {
                tracing::error!(error = %err, "Logbook sink: cannot serialise an event");
                Err(Failure::Build)
            }
            Err(err) => {
                tracing::error!(error = %err, "Logbook sink: cannot build an event");
                Err(Failure::Build)
            }
        };
        match result {
            Ok(()) => {
                report.acked = entry.seq;
                report.sent += 1;
            }
            Err(failure) => {
                metrics
                    .delivery_failures
                    .with_label_values(&[failure.as_str()])
                    .inc();
                report.failure = Some(failure);
                break;
            }
        }
    }
    let delivered = request
        .status
        .as_ref()
        .and_then(|s| s.logbook.as_ref())
        .map_or(0, |l| l.delivered);
    if !orphan
        && report.acked > delivered
        && let Err(err) = advance(&delivery.client, &view, delivered, report.acked).await
    {
        tracing::warn!(request = %format!("{}/{}", view.namespace, view.name), error = %err, "Logbook sink: cannot record delivery");
        metrics
            .delivery_failures
            .with_label_values(&[Failure::StatusWrite.as_str()])
            .inc();
        report.failure = report.failure.or(Some(Failure::StatusWrite));
    }
    report
}

/// Hands one event to the configured sink(s): POSTed (then printed, with --logbook-stdout), or only
/// printed.
async fn send(delivery: &Delivery, line: &str) -> Result<(), Failure> {
    if let Some(http) = &delivery.http {
        http.send(line).await?;
    }
    if delivery.stdout
        && let Err(err) = sink::print(line)
    {
        tracing::warn!(error = %err, "Logbook sink: cannot write to stdout");
        // With an HTTP sink the record is delivered already; stdout is a copy.
        if delivery.http.is_none() {
            return Err(Failure::Stdout);
        }
    }
    Ok(())
}

/// Advances `status.logbook.delivered` from `old` to `new`, only while it still holds `old` on the
/// same object (a JSON patch with `test`s); on a conflict it reads the object again and retries
/// from what it holds, never moving it backwards. A request gone meanwhile needs nothing.
async fn advance(client: &Client, view: &event::RequestView, mut old: u64, new: u64) -> anyhow::Result<()> {
    let api: Api<AccessRequest> = Api::namespaced(client.clone(), &view.namespace);
    for _ in 0..5 {
        let (params, patch) = (
            PatchParams::default(),
            Patch::Json::<()>(advance_patch(&view.uid, old, new)?),
        );
        let write = api.patch_status(&view.name, &params, &patch);
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => return Ok(()),
            Ok(Err(kube::Error::Api(status))) if status.code == 409 || status.code == 422 => {
                let Some(current) = api.get_opt(&view.name).await? else {
                    return Ok(());
                };
                if current.metadata.uid.as_deref() != Some(view.uid.as_str()) {
                    return Ok(());
                }
                let held = current
                    .status
                    .as_ref()
                    .and_then(|s| s.logbook.as_ref())
                    .map_or(0, |l| l.delivered);
                if held >= new {
                    return Ok(());
                }
                old = held;
            }
            Ok(Err(err)) => return Err(err.into()),
            Err(_) => anyhow::bail!("writing status.logbook.delivered took over {WRITE_TIMEOUT:?}"),
        }
    }
    anyhow::bail!("status.logbook.delivered kept changing under the write")
}

/// The JSON patch moving `delivered` from `old` to `new` on the request with `uid` (`delivered`
/// 0 is absent from the object: tested as null).
pub fn advance_patch(uid: &str, old: u64, new: u64) -> anyhow::Result<json_patch::Patch> {
    let old = if old == 0 {
        serde_json::Value::Null
    } else {
        old.into()
    };
    let operations = serde_json::json!([
        { "op": "test", "path": "/metadata/uid", "value": uid },
        { "op": "test", "path": "/status/logbook/delivered", "value": old },
        { "op": "add", "path": "/status/logbook/delivered", "value": new },
    ]);
    Ok(serde_json::from_value(operations)?)
}
