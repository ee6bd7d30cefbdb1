//! A burst of CredentialRequests on real parts: alice creates 500 for her Active request at once
//! (twenty workstation keys, each used by many). The operator gives a live certificate again to every
//! request for a key it already certified, issues new ones no faster than its per-AccessRequest rate
//! limit (bursts of 10, then 6 a minute), lets a short line wait its turn and refuses the rest saying
//! why, while it stays responsive: bob's new AccessRequest becomes Active in normal time meanwhile.
//! Every new certificate has exactly one AssumeRole (the emulator records them) and one
//! `credential_issued` entry in the AccessRequest's logbook; reused ones have neither.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, ResourceExt,
    api::{ListParams, PostParams},
};
use passport_crds::{
    CredentialRequest, KeyType, Phase,
    conditions::{ConditionStatus, observe, types::ISSUED},
};

use crate::{
    E2e,
    credentials::workstation::Workstation,
    scenario::{OwnStack, Scenario, online_instance},
    test,
};

/// CredentialRequests in the burst.
const BURST: usize = 500;
/// Distinct workstation keys among them.
const KEYS: usize = 20;
/// The operator's limits (passport_core::credentials::limit::LIMITS).
const PER_MINUTE: u64 = 6;
const BUCKET: u64 = 10;
/// Liveness, not a benchmark: bob's request, approved automatically, is Active well within this.
const BOB_ACTIVE_WITHIN: Duration = Duration::from_secs(60);
/// How long the burst's requests may take to be decided: the line waits two minutes at most.
const DECIDED_WITHIN: Duration = Duration::from_secs(240);

pub fn trials() -> Vec<E2e> {
    vec![test(
        "credential_burst::a_burst_is_rate_limited_and_the_operator_stays_responsive",
        |_env| async move {
            // A stack of its own: the burst disturbs no other test, and the emulator's AssumeRole
            // record is this test's alone.
            let stack = OwnStack::start().await?;
            let instance = online_instance(&stack.emulator).await?;
            let s = Scenario::new(
                &stack.plane,
                &stack.emulator,
                &stack.operator,
                "burst".into(),
                &["alice", "bob"],
                &[instance.id()],
            )
            .await?;
            burst(&s, instance.id()).await
        },
    )]
}

/// What became of the burst's requests.
#[derive(Debug, Default)]
struct Tally {
    issued: usize,
    reused: usize,
    rate_limited: usize,
    undecided: usize,
    /// Other refusals: `name: reason: message`.
    other: Vec<String>,
    /// Serials of new certificates, per key.
    serials: BTreeMap<String, BTreeSet<String>>,
    /// Certificates handed out, new or reused.
    certificates: BTreeSet<String>,
    /// A sample refusal message.
    refusal: Option<String>,
    /// A sample message of one waiting its turn (`Issued=Unknown`, `RateLimited`).
    waiting: Option<String>,
}

fn tally(requests: &[CredentialRequest]) -> Tally {
    let mut t = Tally::default();
    for request in requests {
        let status = request.status.clone().unwrap_or_default();
        let Some(issued) = observe(&status.conditions, ISSUED) else {
            t.undecided += 1;
            continue;
        };
        match (issued.status, issued.reason) {
            (ConditionStatus::True, reason) => {
                let certificate = status
                    .certificates
                    .first()
                    .map(|c| c.certificate.clone())
                    .unwrap_or_default();
                t.certificates.insert(certificate.clone());
                if reason == "Reused" {
                    t.reused += 1;
                } else {
                    t.issued += 1;
                    t.serials
                        .entry(request.spec.public_key.clone())
                        .or_default()
                        .insert(certificate);
                }
            }
            (ConditionStatus::False, "RateLimited") => {
                t.rate_limited += 1;
                t.refusal.get_or_insert_with(|| issued.message.to_owned());
                if !issued
                    .message
                    .starts_with("rate limited: at most 6 new certificates per minute per AccessRequest")
                {
                    t.other
                        .push(format!("{}: {}", request.name_any(), issued.message));
                }
            }
            (ConditionStatus::False, reason) => {
                t.other
                    .push(format!("{}: {reason}: {}", request.name_any(), issued.message));
            }
            // Waiting its turn (RateLimited) or retrying.
            (ConditionStatus::Unknown, reason) => {
                t.undecided += 1;
                if reason == "RateLimited" {
                    t.waiting.get_or_insert_with(|| issued.message.to_owned());
                }
            }
        }
    }
    t
}

async fn burst(s: &Scenario<'_>, instance_id: &str) -> Result<()> {
    s.request("alice-r", "alice", "1h", &[instance_id])?;
    let active = s
        .wait_phase("alice-r", Phase::Active, Duration::from_secs(90))
        .await?;
    let username = active
        .status
        .as_ref()
        .and_then(|st| st.username.clone())
        .context("no username")?;
    let api: Api<CredentialRequest> = Api::namespaced(s.admin.clone(), &s.namespace);
    let mut workstations = Vec::new();
    for _ in 0..KEYS {
        workstations.push(Workstation::new(KeyType::Ed25519).await?);
    }
    let specs: Vec<_> = (0..BURST)
        .map(|i| workstations[i % KEYS].spec("alice-r", "alice", KeyType::Ed25519))
        .collect::<Result<_>>()?;

    // The burst, and bob asking for access in the middle of it.
    let started = Instant::now();
    let creates = futures::stream::iter(specs.into_iter().enumerate())
        .map(|(i, spec)| {
            let api = api.clone();
            async move {
                let object = CredentialRequest::new(&format!("burst-{i:03}"), spec);
                api.create(&PostParams::default(), &object).await.map(drop)
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>();
    let bob = async {
        // Once the burst is well under way.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let asked = Instant::now();
        s.request("bob-r", "bob", "1h", &[instance_id])?;
        s.wait_phase("bob-r", Phase::Active, BOB_ACTIVE_WITHIN)
            .await
            .context("bob's AccessRequest did not become Active in time during the burst")?;
        Ok::<_, anyhow::Error>(asked.elapsed())
    };
    let (created, bob_active) = tokio::join!(creates, bob);
    created.context("creating the burst")?;
    let created_in = started.elapsed();
    let bob_active = bob_active?;

    // Until every request is decided (the line drains within two minutes).
    let mut requests;
    let mut waiting = None;
    loop {
        requests = api.list(&ListParams::default()).await?.items;
        let t = tally(&requests);
        waiting = waiting.or(t.waiting);
        if t.undecided == 0 || started.elapsed() > DECIDED_WITHIN {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let elapsed = started.elapsed();
    let t = tally(&requests);

    let uid = active.metadata.uid.clone().context("no uid")?;
    let prefix = format!("passport-{}-{username}-", &uid[..8]);
    let assumed = s
        .emulator
        .assumed_roles()
        .await?
        .into_iter()
        .filter(|call| {
            call["ExternalId"] == format!("e2e-{}", s.namespace)
                && call["RoleSessionName"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .count();
    let record = s
        .requests
        .get("alice-r")
        .await?
        .status
        .and_then(|st| st.logbook)
        .unwrap_or_default();
    let logged = record.credentials.as_ref().map_or(0, |c| c.count);
    let logged_entries = record
        .entries
        .iter()
        .filter(|e| e.action == "credential_issued")
        .count();

    eprintln!(
        "credential burst: {BURST} CredentialRequests ({KEYS} keys) created in {created_in:.1?}; after \
         {elapsed:.1?}: {} issued, {} reused, {} rate-limited, {} undecided, {} other; {assumed} \
         AssumeRole calls; {logged} credential issues in the logbook; bob's request Active after \
         {bob_active:.1?}",
        t.issued,
        t.reused,
        t.rate_limited,
        t.undecided,
        t.other.len()
    );
    if let Some(refusal) = &t.refusal {
        eprintln!("credential burst: a refusal says: {refusal}");
    }
    if let Some(waiting) = &waiting {
        eprintln!("credential burst: one waiting its turn says: {waiting}");
    }

    ensure!(t.other.is_empty(), "unexpected outcomes:\n{}", t.other.join("\n"));
    ensure!(
        t.undecided == 0,
        "{} requests undecided after {elapsed:?}",
        t.undecided
    );
    ensure!(t.issued + t.reused + t.rate_limited == BURST, "{t:?}");
    // New certificates: never more than the bucket plus the rate over the time taken, and one per key.
    let minutes = elapsed.as_secs().div_ceil(60);
    let bound = usize::try_from(BUCKET + PER_MINUTE * minutes).unwrap_or(usize::MAX);
    ensure!(
        t.issued <= bound,
        "{} new certificates in {elapsed:?}: more than {bound}",
        t.issued
    );
    ensure!(
        t.serials.values().all(|certs| certs.len() == 1) && t.issued <= KEYS,
        "a key was certified twice while its certificate was live: {:?}",
        t.serials.values().map(BTreeSet::len).collect::<Vec<_>>()
    );
    ensure!(
        t.certificates.len() == t.issued,
        "{} distinct certificates handed out, {} issued: a reused one was not one issued",
        t.certificates.len(),
        t.issued
    );
    ensure!(t.issued >= 1 && t.reused >= 1 && t.rate_limited >= 1, "{t:?}");
    // The line is served: more than the first burst got new certificates, and while they waited
    // they said so (what the CLI prints as it waits).
    ensure!(t.issued > BUCKET as usize, "the line was never served: {t:?}");
    let waiting = waiting.context("no request was seen waiting its turn")?;
    ensure!(
        waiting.starts_with("rate limited: at most 6 new certificates per minute per AccessRequest")
            && waiting.contains("waits its turn"),
        "{waiting}"
    );
    ensure!(
        assumed == t.issued,
        "{assumed} AssumeRole calls for {} new certificates (reuse makes none)",
        t.issued
    );
    ensure!(
        logged == t.issued as u64 && logged_entries == t.issued,
        "the logbook counts {logged} credential issues ({logged_entries} entries) for {} new certificates",
        t.issued
    );
    ensure!(bob_active <= BOB_ACTIVE_WITHIN, "bob waited {bob_active:?}");
    Ok(())
}
