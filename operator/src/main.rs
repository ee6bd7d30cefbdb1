//! `passport-operator`: runs passport's controllers against the cluster in the current kubeconfig or
//! in-cluster configuration.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::Parser;
use passport_core::credentials::parse_certificate_ttl;
use passport_operator::{
    aws::sdk::SdkFleet,
    cluster::{ca_secret, cache::RequestCache},
    controller::{self, Settings},
    http,
    leader::{self, Leadership},
    logbook_sink::{AuditGate, LogbookSink, SinkArgs, SinkFeed},
    metrics::{LogbookMetrics, Metrics},
    preflight,
};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// jemalloc, not glibc's malloc: thousands of cached requests are many small allocations, which
/// jemalloc packs without per-chunk headers, and its background thread hands freed pages back to
/// the system instead of keeping a burst's peak for good. Its options come from `_RJEM_MALLOC_CONF`,
/// which the image sets (one arena, pages back after 1 s: see scripts/image.sh).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(version, about = "Just-in-time, audited server access for AWS fleets")]
struct Args {
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "PASSPORT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// `text` for people, `json` for log pipelines (one JSON object per line).
    #[arg(long, env = "PASSPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The same as `--log-format json` (kept for existing manifests).
    #[arg(long, hide = true)]
    log_json: bool,
    /// The operator's own namespace, where its SSH CA Secret lives.
    #[arg(long, env = "POD_NAMESPACE", default_value = "passport-system")]
    namespace: String,
    /// How long issued SSH certificates last (Go duration syntax, 1m to 1h); never past the
    /// AccessRequest's expiresAt.
    #[arg(long, env = "PASSPORT_CERTIFICATE_TTL", default_value = "5m", value_parser = certificate_ttl)]
    certificate_ttl: Duration,
    /// How long a finished AccessRequest (Completed, Expired, Denied, Failed) stays before it is
    /// deleted, once its Logbook record reached the audit sink (Go duration syntax, e.g. 168h).
    #[arg(long, env = "PASSPORT_FINISHED_RETENTION", default_value = "168h", value_parser = retention)]
    finished_retention: Duration,
    /// Reconciles of one kind running at once; more queue up (a burst of requests is worked
    /// through this many at a time).
    #[arg(long, env = "PASSPORT_MAX_CONCURRENT_RECONCILES", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    max_concurrent_reconciles: u16,
    #[command(flatten)]
    logbook: SinkArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn retention(text: &str) -> Result<Duration, String> {
    let duration = passport_crds::duration::parse_go_duration(text).map_err(|err| err.to_string())?;
    if duration.is_zero() {
        return Err("0s would delete requests as they finish: keep them at least 1s".into());
    }
    Ok(duration)
}

fn certificate_ttl(text: &str) -> Result<Duration, String> {
    parse_certificate_ttl(text).map_err(|err| err.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(args.log_json || args.log_format == LogFormat::Json);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("passport-operator: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    preflight::check_crds(&client).await?;
    let (metrics, registry) = Metrics::new()?;
    let logbook_metrics = LogbookMetrics::register(&registry)?;
    let logbook = LogbookSink::new(client.clone(), &args.namespace, &args.logbook)?;
    // Fail closed: the AccessRequest controller grants nothing new while this is shut.
    let audit_gate = logbook
        .as_ref()
        .map_or_else(AuditGate::disabled, LogbookSink::gate);
    let (ready_tx, ready_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    };
    let server = tokio::spawn(http::serve(args.http_addr, registry, ready_rx, stopped()));
    let authority = ca_secret::load_or_create(client.clone(), &args.namespace).await?;
    let fleet = SdkFleet::from_env().await;
    let mut leadership = Leadership::start(client.clone(), &args.namespace, &leader::identity()).await?;
    // A standby is healthy and ready: it takes over as soon as the leader's lease lapses.
    ready_tx.send_replace(true);
    tracing::info!("passport-operator ready; waiting to lead");
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let lost = tokio::select! {
        () = &mut shutdown => false,
        () = leadership.acquired() => {
            tracing::info!("leading: reconciling");
            let settings = Settings {
                namespace: args.namespace,
                fleet,
                authority,
                metrics,
                certificate_ttl: args.certificate_ttl,
                finished_retention: args.finished_retention,
                audit_gate,
                concurrency: args.max_concurrent_reconciles,
            };
            let mut cache = RequestCache::default();
            let requests = cache.store();
            let sink = logbook.map(|sink| {
                let feed = SinkFeed::default();
                let wakes = feed.clone();
                cache.observe(move |event| wakes.observe(event));
                tokio::spawn(sink.run(logbook_metrics, requests, feed, stopped()))
            });
            let controllers = tokio::spawn(controller::run(client, settings, cache, stopped()));
            let lost = tokio::select! {
                () = &mut shutdown => false,
                () = leadership.lost() => true,
            };
            stop_tx.send_replace(true);
            if lost {
                // Another replica may lead already: not one more command from this one's cache.
                controllers.abort();
                sink.iter().for_each(tokio::task::JoinHandle::abort);
            } else if tokio::time::timeout(SHUTDOWN_GRACE, controllers).await.is_err() {
                // In-flight reconciles get a moment to finish, then the ids of commands sent go
                // into status; every intent is there already, so cutting this short loses nothing:
                // the next leader picks it up (and looks sent commands up by their comment).
                tracing::warn!("reconciles still running after {SHUTDOWN_GRACE:?}; stopping anyway");
            }
            if let Some(sink) = sink.filter(|_| !lost) {
                // Delivered is advanced after each turn; an unfinished one is sent again later.
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, sink).await;
            }
            lost
        }
    };
    stop_tx.send_replace(true);
    leadership.release().await;
    server.await??;
    anyhow::ensure!(
        !lost,
        "lost the leader lease; exiting so that a fresh start competes for it"
    );
    tracing::info!("passport-operator stopped");
    Ok(())
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received; shutting down"),
    }
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
