//! Issuance latency on the real control plane (an ignored trial, run with `--ignored`; reported, never
//! asserted).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use passport_crds::{CredentialRequest, KeyType, Phase};

use super::{
    ISSUE_TIMEOUT, PROVISION_TIMEOUT,
    support::{create, issued_condition, issued_status},
    workstation::Workstation,
};
use crate::scenario::Scenario;

/// How many CredentialRequests the bench makes, one after the other.
const BENCH_REQUESTS: usize = 50;

/// Issuance latency as the CLI sees it: from sending the create to the Issued status arriving on a
/// watch opened beforehand, one request at a time. All of them are for one key, so after the first
/// the operator gives the same certificate again (no signature, no AssumeRole): what a CLI that lost
/// its cached certificate sees, and the rate limit never applies.
/// Returns the create sent → Issued seen latencies.
pub async fn bench_issuance(s: &Scenario<'_>, instance_id: &str) -> Result<Vec<Duration>> {
    s.request("r", "alice", "1h", &[instance_id])?;
    s.wait_phase("r", Phase::Active, PROVISION_TIMEOUT).await?;
    let api: Api<CredentialRequest> = Api::namespaced(s.admin.clone(), &s.namespace);
    let (decided_tx, mut decided_rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(
        watcher(api.clone(), watcher::Config::default())
            .applied_objects()
            .for_each(move |object| {
                if let Ok(request) = object
                    && issued_condition(&request).is_some()
                {
                    let _ = decided_tx.send((request.name_any(), Instant::now(), request));
                }
                futures::future::ready(())
            }),
    );
    let workstation = Workstation::new(KeyType::Ed25519).await?;
    let (mut latencies, mut creates) = (Vec::new(), Vec::new());
    for i in 0..BENCH_REQUESTS {
        let name = format!("bench-{i:02}");
        let started = Instant::now();
        create(&api, &name, workstation.spec("r", "alice", KeyType::Ed25519)?).await?;
        creates.push(started.elapsed());
        loop {
            let next = tokio::time::timeout(ISSUE_TIMEOUT, decided_rx.recv()).await;
            let Ok(Some((seen, at, request))) = next else {
                watch.abort();
                bail!(
                    "{name} not decided within {ISSUE_TIMEOUT:?}:\n{}",
                    s.operator.log_tail()
                );
            };
            if seen == name {
                issued_status(&request)?;
                latencies.push(at - started);
                break;
            }
        }
    }
    watch.abort();
    let summary = |times: &[Duration]| {
        let mut times = times.to_vec();
        times.sort();
        format!(
            "median {:?}, p90 {:?}, worst {:?}, best {:?}",
            times[times.len() / 2],
            times[times.len() * 9 / 10],
            times[times.len() - 1],
            times[0]
        )
    };
    eprintln!(
        "credentials bench: {BENCH_REQUESTS} CredentialRequests, create sent → Issued seen: {}; \
         of which the create call: {}",
        summary(&latencies),
        summary(&creates)
    );
    Ok(latencies)
}
