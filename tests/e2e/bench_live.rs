//! The bench's live part (N requests: memory over a soak, expiry lag in waves, recovery after a
//! restart) and its client part (credential issuance, `ssh-config` against `kubectl get`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use passport_crds::Phase;
use passport_tests::{aws::RecordedCommand, kubectl, operator::OperatorProcess};

use crate::{
    bench_report::{Table, cpu_seconds, quantile_ms, rss_mib, status_mib},
    bench_scale::{INSTANCES, Size, create_all, request},
    bench_seen::Seen,
    cli::support::{Plugin, until_allowed},
    scenario::Scenario,
};

/// Requests expire in this many waves, [`WAVE_GAP`] apart; the last one expires while the operator
/// is down.
const WAVES: usize = 3;
const WAVE_GAP: u64 = 20;

pub struct Outcome {
    /// CPU seconds the first operator used, up to its kill.
    pub first_cpu: f64,
    /// The operator started after the kill.
    pub restarted: OperatorProcess,
}

/// Figure 2.
pub async fn live(
    s: &Scenario<'_>,
    seen: &Seen,
    size: &Size,
    instances: &[String],
    grant_rate: f64,
    table: &mut Table,
) -> Result<Outcome> {
    let pid = s.operator.pid().context("operator not running")?;
    // Activations spread over the time it takes to create them all, which a burst's grant rate
    // only bounds from above: twice that, and more. Durations count from each activation, so the
    // first wave waits that long plus the soak (which then sees no expiry), and the last wave comes
    // that much after the second (so all of it is still live when the operator is killed).
    let spread = (2.0 * size.live as f64 / grant_rate) as u64 + 30;
    let base = size.soak.as_secs() + spread;
    let delay = |wave: usize| match wave {
        w if w + 1 == WAVES => base + WAVE_GAP * (w as u64 - 1) + WAVE_GAP.max(spread),
        w => base + WAVE_GAP * w as u64,
    };
    let names: Vec<String> = (0..size.live).map(|i| format!("live-{i}")).collect();
    let objects = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let duration = format!("{}s", delay(i % WAVES));
            request(
                s,
                name,
                &format!("live{}", i / INSTANCES),
                &duration,
                &instances[i % INSTANCES],
            )
        })
        .collect();
    let mut rss = Vec::new();
    create_all(&s.requests, objects).await?;
    seen.wait_all(&names, "Active", Duration::from_secs(base), |m| {
        m.active.is_some()
    })
    .await?;
    let soak_start = Instant::now();
    let mut anon: f64 = 0.0;
    while soak_start.elapsed() < size.soak {
        rss.push(rss_mib(pid)?);
        anon = anon.max(status_mib(pid, "RssAnon:")?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (first, last) = (rss[0], rss[rss.len() - 1]);
    let peak = rss.iter().copied().fold(0.0, f64::max);
    table.at_most(
        format!("operator RSS with {} live, peak over the soak", size.live),
        peak,
        "MiB",
        64.0,
    );
    table.at_most(
        format!("operator RSS growth over the {:?} soak", size.soak),
        last - first,
        "MiB",
        4.0,
    );
    table.info("of which anonymous (RssAnon: heap, stacks), peak", anon, "MiB");

    let waves: Vec<Vec<String>> = (0..WAVES)
        .map(|w| names.iter().skip(w).step_by(WAVES).cloned().collect())
        .collect();
    let (before, last_wave) = waves.split_at(WAVES - 1);
    let before: Vec<String> = before.concat();
    let wait = Duration::from_secs(delay(WAVES - 1) + 60);
    let sampling = async {
        loop {
            if let Ok(mib) = rss_mib(pid) {
                rss.push(mib);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        done = seen.wait_all(&before, "Expired", wait, |m| m.ended.is_some()) => done?,
        () = sampling => {}
    }
    table.info(
        "operator RSS peak, whole run",
        rss.iter().copied().fold(0.0, f64::max),
        "MiB",
    );
    let first_cpu = cpu_seconds(pid)?;
    s.operator.kill();

    // All of the last wave past expiresAt with no operator, then a new one.
    let last_wave = &last_wave[0];
    let latest = last_wave
        .iter()
        .filter_map(|n| seen.get(n).expires_at)
        .max()
        .context("no expiresAt")?;
    let early = last_wave.iter().filter(|n| seen.get(n).ended.is_some()).count();
    if early > 0 {
        table.note(format!(
            "{early} of the last wave ended before the operator was killed"
        ));
    }
    let until = latest.duration_since(jiff::Timestamp::now()).unsigned_abs() + Duration::from_secs(1);
    if jiff::Timestamp::now() < latest {
        tokio::time::sleep(until).await;
    }
    let restarted = OperatorProcess::start(s.plane, &s.emulator.env_vars())?;
    let started = Instant::now();
    seen.wait_all(
        last_wave,
        "Expired after the restart",
        Duration::from_secs(300),
        |m| m.ended.is_some(),
    )
    .await?;
    table.at_most(
        format!("restart with {} past expiresAt → all revoked", last_wave.len()),
        started.elapsed().as_secs_f64(),
        "s",
        60.0,
    );
    Ok(Outcome { first_cpu, restarted })
}

/// For each of `names` (ended by expiry): its revoke's SendCommand time minus its expiresAt.
pub fn revoke_lags(
    commands: &[RecordedCommand],
    seen: &Seen,
    namespace: &str,
    names: &[String],
) -> Result<Vec<Duration>> {
    names
        .iter()
        .filter(|n| matches!(seen.get(n).ended, Some((Phase::Expired, _))))
        .map(|name| {
            let expires = seen.get(name).expires_at.context("no expiresAt")?;
            let key = format!("{namespace}/{name}");
            let sent = commands
                .iter()
                .find(|c| c.is_for("revoke", &key))
                .with_context(|| format!("no revoke recorded for {key}"))?;
            let sent: jiff::Timestamp = sent.requested_date_time.parse()?;
            Ok(Duration::try_from(sent.duration_since(expires)).unwrap_or_default())
        })
        .collect()
}

/// Figure 2's expiry lag, for the waves the first operator expired.
pub fn wave_lags(
    commands: &[RecordedCommand],
    seen: &Seen,
    namespace: &str,
    size: &Size,
) -> Result<Vec<Duration>> {
    let names: Vec<String> = (0..size.live)
        .filter(|i| i % WAVES != WAVES - 1)
        .map(|i| format!("live-{i}"))
        .collect();
    revoke_lags(commands, seen, namespace, &names)
}

/// Figures 4 and 5: issuance as the CLI sees it, and `ssh-config` against `kubectl get`.
pub async fn clients(s: &Scenario<'_>, instance: &str, table: &mut Table) -> Result<()> {
    let issuance = crate::credentials::bench::bench_issuance(s, instance).await?;
    table.info(
        "credential issuance, create → Issued, p50",
        quantile_ms(&issuance, 0.5),
        "ms",
    );
    table.info(
        "credential issuance, create → Issued, p99",
        quantile_ms(&issuance, 0.99),
        "ms",
    );

    s.bind("passport-requester", "Group", "developers")?;
    let kubeconfig = s.plane.user_kubeconfig("alice");
    let alice = Plugin::new(kubeconfig.clone(), &s.namespace, String::new())?;
    until_allowed(&alice, &["ssh-config"]).await?;
    let (mut plugin, mut get) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let start = Instant::now();
        alice.run(&["ssh-config"]).await?.ok("ssh-config")?;
        plugin.push(start.elapsed());
        let start = Instant::now();
        kubectl::run(&kubeconfig, &["-n", &s.namespace, "get", "accessrequests"], None)?.ok()?;
        get.push(start.elapsed());
    }
    let (plugin, get) = (quantile_ms(&plugin, 0.5), quantile_ms(&get, 0.5));
    table.info("kubectl passport ssh-config, median", plugin, "ms");
    table.info("kubectl get accessrequests, median", get, "ms");
    table.info("ssh-config ÷ get accessrequests", plugin / get, "×");
    Ok(())
}
