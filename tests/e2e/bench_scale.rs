//! The bench behind `scripts/bench.sh`: an ignored trial on a stack of its own (control plane, moto,
//! operator) with 100 managed instances whose SSM agents answer at once
//! (moto_ext's in-process `passport:instant` runner).
//! It measures, in one run: apply → Active one at a time and the revoke lag after expiry; a burst
//! of M requests against the same apiserver's bare create + status patch; N live requests (the
//! operator's memory over a soak, expiry lag in waves, recovery after a restart, CPU per request);
//! credential issuance; and `kubectl passport ssh-config` against `kubectl get accessrequests`.
//! `PASSPORT_BENCH_SIZE` is `smoke` (default) or `full`. The trial fails only when it cannot measure;
//! the table says which targets are met, and bench.sh exits non-zero on a miss.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, stream};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use passport_crds::AccessRequest;
use passport_tests::{
    aws::{AwsEmulator, Platform},
    controlplane, fixtures,
    operator::OperatorProcess,
};

use crate::{
    E2e, alone,
    bench_live::{clients, live, revoke_lags, wave_lags},
    bench_report::{Table, cpu_seconds, machine, quantile_ms},
    bench_seen::Seen,
    benchmark,
    scenario::Scenario,
};

pub const INSTANCES: usize = 100;
/// How many creates the bench (and the baseline) keeps in flight at once.
pub const IN_FLIGHT: usize = 100;
pub const NAMESPACE: &str = "bench";

pub fn trials() -> Vec<E2e> {
    vec![benchmark(alone("bench_scale::table", run))]
}

/// What one size measures.
#[derive(Debug)]
pub struct Size {
    pub name: &'static str,
    pub sequential: usize,
    pub burst: usize,
    pub live: usize,
    pub soak: Duration,
}

impl Size {
    fn from_env() -> Result<Self> {
        match std::env::var("PASSPORT_BENCH_SIZE").as_deref() {
            Ok("smoke") | Err(_) => Ok(Self {
                name: "smoke",
                sequential: 30,
                burst: 100,
                live: 300,
                soak: Duration::from_secs(30),
            }),
            Ok("full") => Ok(Self {
                name: "full",
                sequential: 100,
                burst: 1000,
                live: 10_000,
                soak: Duration::from_secs(600),
            }),
            Ok(other) => bail!("PASSPORT_BENCH_SIZE={other}: expected smoke or full"),
        }
    }
}

/// An AccessRequest of `requester` for `duration` on one instance, in the bench's account.
pub fn request(
    s: &Scenario<'_>,
    name: &str,
    requester: &str,
    duration: &str,
    instance: &str,
) -> AccessRequest {
    fixtures::request(name)
        .namespace(&s.namespace)
        .requester(requester)
        .reason("bench")
        .duration(duration)
        .account(&s.account)
        .targets([instance])
        .build()
}

/// Creates `objects` with [`IN_FLIGHT`] creates at a time.
pub async fn create_all(api: &Api<AccessRequest>, objects: Vec<AccessRequest>) -> Result<()> {
    let results: Vec<Result<AccessRequest, kube::Error>> = stream::iter(objects)
        .map(|object| async move { api.create(&PostParams::default(), &object).await })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results
        .into_iter()
        .try_for_each(|r| r.map(drop))
        .context("create")
}

fn instance_ids() -> Vec<String> {
    (0..INSTANCES)
        .map(|k| format!("i-{:017x}", 0xbe_0000 + k))
        .collect()
}

async fn run() -> Result<()> {
    let size = Size::from_env()?;
    let emulator = AwsEmulator::start().await?;
    let plane = controlplane::start_with_crds().await?;
    // moto_ext's in-process runner (INSTANT_RUNNER): answers each command at once.
    let runner = vec!["passport:instant".to_owned()];
    let instances = instance_ids();
    for id in &instances {
        emulator
            .register_agent(id, Platform::Linux, Some(runner.clone()))
            .await?;
    }
    let mut table = Table::default();
    let bare_rate = baseline(&plane, size.burst).await?;

    let operator = OperatorProcess::start(&plane, &emulator.env_vars())?;
    // Measured from a ready operator: its start-up is not a request's latency.
    crate::operator::wait_for_ok(operator.http_port(), "/readyz").await?;
    let mut users = vec!["alice".to_owned(), "burst".to_owned()];
    users.extend((0..size.sequential).map(|i| format!("seq{i}")));
    users.extend((0..size.live.div_ceil(INSTANCES)).map(|i| format!("live{i}")));
    users.extend((0..size.burst.div_ceil(INSTANCES)).map(|i| format!("burst{i}")));
    let user_refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let instance_refs: Vec<&str> = instances.iter().map(String::as_str).collect();
    let s = Scenario::new(
        &plane,
        &emulator,
        &operator,
        NAMESPACE.into(),
        &user_refs,
        &instance_refs,
    )
    .await?;
    let (seen, watch) = Seen::watch(Api::namespaced(s.requests.clone().into_client(), NAMESPACE));

    let sequential = one_at_a_time(&s, &seen, &size, &instances, &mut table).await?;
    // Their expiry, one at a time too: before the burst, so their revocation does not queue behind it.
    seen.wait_all(&sequential, "Expired", Duration::from_secs(180), |m| {
        m.ended.is_some()
    })
    .await?;
    let grant_rate = burst(&s, &seen, &size, &instances, bare_rate, &mut table).await?;
    let outcome = live(&s, &seen, &size, &instances, grant_rate, &mut table).await?;
    let commands = emulator.commands().await?;
    let lag = revoke_lags(&commands, &seen, NAMESPACE, &sequential)?;
    table.at_most(
        "expiresAt → revoke sent, one at a time, p99",
        quantile_ms(&lag, 0.99),
        "ms",
        1000.0,
    );
    let waves = wave_lags(&commands, &seen, NAMESPACE, &size)?;
    table.at_most(
        format!("expiresAt → revoke sent, {} live in waves, p99", size.live),
        quantile_ms(&waves, 0.99),
        "ms",
        1000.0,
    );
    let lifecycles = (size.sequential + size.burst + size.live) as f64;
    let cpu = outcome.first_cpu + cpu_seconds(outcome.restarted.pid().context("no operator")?)?;
    table.info(
        "operator CPU per request lifecycle",
        cpu / lifecycles * 1000.0,
        "ms",
    );
    clients(&s.with_operator(&outcome.restarted), &instances[0], &mut table).await?;
    watch.abort();
    let path = table.publish(size.name, &machine())?;
    eprintln!("bench table written to {}", path.display());
    Ok(())
}

/// Figure 1: create → Active for one request at a time; returns their names.
async fn one_at_a_time(
    s: &Scenario<'_>,
    seen: &Seen,
    size: &Size,
    instances: &[String],
    table: &mut Table,
) -> Result<Vec<String>> {
    let mut latencies = Vec::new();
    let mut names = Vec::new();
    for i in 0..size.sequential {
        let name = format!("seq-{i}");
        let object = request(s, &name, &format!("seq{i}"), "1m", &instances[i % INSTANCES]);
        let start = Instant::now();
        s.requests.create(&PostParams::default(), &object).await?;
        seen.wait_all(
            std::slice::from_ref(&name),
            "Active",
            Duration::from_secs(60),
            |m| m.active.is_some(),
        )
        .await?;
        latencies.push(seen.get(&name).active.context("no Active mark")? - start);
        names.push(name);
    }
    // The first request after the operator starts pays for its first AWS calls: shown on its own.
    let cold = latencies.remove(0);
    table.info(
        "create → Active, first request (cold)",
        cold.as_secs_f64() * 1000.0,
        "ms",
    );
    table.at_most(
        "create → Active, one at a time (after the first), p50",
        quantile_ms(&latencies, 0.5),
        "ms",
        150.0,
    );
    table.at_most(
        "create → Active, one at a time (after the first), p99",
        quantile_ms(&latencies, 0.99),
        "ms",
        300.0,
    );
    Ok(names)
}

/// Figure 3: M requests created at once → grants per second, against the apiserver's bare rate.
async fn burst(
    s: &Scenario<'_>,
    seen: &Seen,
    size: &Size,
    instances: &[String],
    bare_rate: f64,
    table: &mut Table,
) -> Result<f64> {
    let names: Vec<String> = (0..size.burst).map(|i| format!("burst-{i}")).collect();
    let objects = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            request(
                s,
                name,
                &format!("burst{}", i / INSTANCES),
                "1m",
                &instances[i % INSTANCES],
            )
        })
        .collect();
    let start = Instant::now();
    create_all(&s.requests, objects).await?;
    seen.wait_all(&names, "Active", Duration::from_secs(600), |m| m.active.is_some())
        .await?;
    let last = names
        .iter()
        .filter_map(|n| seen.get(n).active)
        .max()
        .context("no Active")?;
    let rate = size.burst as f64 / (last - start).as_secs_f64();
    table.info(format!("burst of {}: grants per second", size.burst), rate, "/s");
    table.info(
        "bare create + status patch per second (same apiserver)",
        bare_rate,
        "/s",
    );
    table.at_least(
        "burst grants/s ÷ bare create+patch/s",
        rate / bare_rate,
        "×",
        0.33,
    );
    Ok(rate)
}

/// What the apiserver alone does: create `count` AccessRequests and patch each one's status, with
/// the same concurrency as the burst, before the operator runs; objects per second. Cleans up.
async fn baseline(plane: &passport_tests::ControlPlane, count: usize) -> Result<f64> {
    let client = plane.admin_client().await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &fixtures::namespace("baseline"))
        .await?;
    let api: Api<AccessRequest> = Api::namespaced(client, "baseline");
    let start = Instant::now();
    let results: Vec<Result<()>> = stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("bare-{i}");
                let object = fixtures::request(&name)
                    .namespace("baseline")
                    .reason("bench baseline")
                    .duration("1m")
                    .build();
                api.create(&PostParams::default(), &object).await?;
                let status = serde_json::json!({ "status": {
                    "phase": "Active", "expiresAt": Timestamp::now().to_string() } });
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = start.elapsed();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    Ok(count as f64 / elapsed.as_secs_f64())
}
