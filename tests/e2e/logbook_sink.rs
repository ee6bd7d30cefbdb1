//! The Logbook's external sink on real parts: the real operator delivers every record as a CloudEvent
//! to a third-party receiver (a Python server on the PyPI `cloudevents` SDK), through the receiver
//! answering 503, not listening at all, and the operator being SIGKILLed with records undelivered;
//! and with `--logbook-stdout` prints them as JSON lines. Every entry arrives, none with a changed id,
//! in order per request; a record arrives twice only under the same id with the same content.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use passport_crds::{
    AccessRequest, Phase,
    conditions::{self, types as condition_types},
};
use passport_tests::{
    ControlPlane,
    aws::AwsEmulator,
    cloudevents::{Receiver, json_lines},
    controlplane, metrics,
    operator::OperatorProcess,
    wait::eventually,
};
use serde_json::Value;

use crate::{
    E2e,
    scenario::{Scenario, online_instance},
    test,
};

pub(crate) const ACTIVE_TIMEOUT: Duration = Duration::from_secs(90);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
const AUTH_SECRET: &str = "passport-logbook-sink";
const AUTHORIZATION: &str = "Bearer e2e-logbook-token";
pub(crate) const CLUSTER: &str = "e2e-cluster";
const SOURCE: &str = "/passport/e2e-cluster/passport-system";
/// The operator's leader-election identity across restarts: a restarted process takes its lease
/// back at once.
const POD_NAME: &str = "passport-operator-0";

pub fn trials() -> Vec<E2e> {
    vec![
        test("logbook_sink::receiver_outage_loses_nothing", |_env| async move {
            receiver_outage().await
        }),
        test(
            "logbook_sink::operator_killed_with_records_undelivered",
            |_env| async move { operator_killed().await },
        ),
        test("logbook_sink::full_backlog_holds_new_grants", |_env| async move {
            full_backlog().await
        }),
        test(
            "logbook_sink::a_refused_request_does_not_hold_back_others",
            |_env| async move { refused_request().await },
        ),
        test("logbook_sink::stdout_prints_json_lines", |_env| async move {
            stdout_lines().await
        }),
    ]
}

/// One series' value from the operator's /metrics (parsed as Prometheus text), by name and labels.
async fn metric(operator: &OperatorProcess, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
    let scrape = metrics::scrape(operator).await?;
    metrics::value(&scrape, name, labels).with_context(|| format!("no {name} {labels:?} in /metrics"))
}

/// A control plane, the AWS emulator and the operator with Logbook flags, restartable.
pub(crate) struct SinkStack {
    pub(crate) emulator: AwsEmulator,
    plane: ControlPlane,
    args: Vec<String>,
    stdout: Option<PathBuf>,
    pub(crate) operator: OperatorProcess,
}

impl SinkStack {
    pub(crate) async fn start(args: Vec<String>, stdout: Option<PathBuf>) -> Result<Self> {
        let emulator = AwsEmulator::start().await?;
        let plane = controlplane::start_with_crds().await?;
        let operator = Self::operator(&plane, &emulator, &args, stdout.as_deref())?;
        Ok(Self {
            emulator,
            plane,
            args,
            stdout,
            operator,
        })
    }

    fn operator(
        plane: &ControlPlane,
        emulator: &AwsEmulator,
        args: &[String],
        stdout: Option<&Path>,
    ) -> Result<OperatorProcess> {
        let mut env = emulator.env_vars();
        env.push(("POD_NAME", POD_NAME.to_owned()));
        OperatorProcess::start_with(plane, &env, None, args, stdout)
    }

    /// SIGKILLs the operator and starts another with the same flags.
    fn crash_and_restart(&mut self) -> Result<()> {
        self.operator.kill();
        self.operator = Self::operator(&self.plane, &self.emulator, &self.args, self.stdout.as_deref())?;
        Ok(())
    }

    /// The sink's auth Secret, as an administrator would create it.
    async fn auth_secret(&self) -> Result<()> {
        let secrets: Api<Secret> = Api::namespaced(self.plane.admin_client().await?, "passport-system");
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(AUTH_SECRET.to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                "authorization".to_owned(),
                ByteString(AUTHORIZATION.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        };
        secrets.create(&PostParams::default(), &secret).await?;
        Ok(())
    }

    pub(crate) async fn scenario(&self, namespace: &str, instance_id: &str) -> Result<Scenario<'_>> {
        Scenario::new(
            &self.plane,
            &self.emulator,
            &self.operator,
            namespace.to_owned(),
            &["alice"],
            &[instance_id],
        )
        .await
    }
}

impl Drop for SinkStack {
    fn drop(&mut self) {
        self.operator.kill();
        self.plane.stop();
    }
}

fn sink_args(receiver: &Receiver) -> Vec<String> {
    let mut args = vec![
        format!("--logbook-sink={}", receiver.url()),
        format!("--logbook-sink-auth-secret={AUTH_SECRET}"),
        format!("--cluster-name={CLUSTER}"),
    ];
    if let Some(ca) = &receiver.ca {
        args.push(format!("--logbook-sink-ca={}", ca.display()));
    }
    args
}

pub(crate) async fn complete(s: &Scenario<'_>, name: &str) -> Result<()> {
    let patch = serde_json::json!({ "spec": { "completed": true } });
    s.requests
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Entries not yet delivered over the namespace's requests (from their durable records).
async fn backlog(requests: &Api<AccessRequest>) -> Result<u64> {
    let list = requests.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter_map(|r| r.status.as_ref()?.logbook.as_ref())
        .map(|l| l.undelivered().count() as u64)
        .sum())
}

/// Waits until every request's record is delivered (`delivered` at its last seq) and `events()`
/// holds every entry; returns the requests.
async fn all_delivered<F>(requests: &Api<AccessRequest>, events: F) -> Result<Vec<AccessRequest>>
where
    F: Fn() -> Result<Vec<Value>>,
{
    eventually(DELIVERY_TIMEOUT, || async {
        let list = requests.list(&ListParams::default()).await?.items;
        let received: BTreeSet<String> = events()?
            .iter()
            .filter_map(|e| Some(e["attributes"]["id"].as_str()?.to_owned()))
            .collect();
        for request in &list {
            let uid = request.metadata.uid.clone().unwrap_or_default();
            let logbook = request
                .status
                .as_ref()
                .and_then(|s| s.logbook.clone())
                .context("no logbook yet")?;
            ensure!(
                logbook.delivered == logbook.last_seq(),
                "{}: delivered {} of {}",
                request.metadata.name.as_deref().unwrap_or_default(),
                logbook.delivered,
                logbook.last_seq()
            );
            for entry in &logbook.entries {
                let id = passport_crds::logbook::LogbookRecord::entry_id(&uid, entry.seq);
                ensure!(received.contains(&id), "{id} not received yet");
            }
        }
        Ok(list)
    })
    .await
}

/// What the receiver got, checked against the durable records.
#[derive(Debug, Default)]
struct Delivered {
    events: usize,
    distinct: usize,
}

/// Every entry of every request arrived with its id, type, source, subject, time and data; the
/// first arrivals of each request come in seq order with no gap; a repeated id repeats the same
/// event. `events` are `{attributes, data}` records.
fn check_events(events: &[Value], requests: &[AccessRequest]) -> Result<Delivered> {
    let mut first: BTreeMap<String, &Value> = BTreeMap::new();
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in events {
        let id = event["attributes"]["id"]
            .as_str()
            .context("an event without id")?;
        match first.get(id) {
            Some(earlier) => ensure!(
                earlier["attributes"] == event["attributes"] && earlier["data"] == event["data"],
                "id {id} arrived twice with different content:\n{earlier}\n{event}"
            ),
            None => {
                first.insert(id.to_owned(), event);
                let uid = event["data"]["requestUID"].as_str().context("no requestUID")?;
                let seq = event["data"]["seq"].as_u64().context("no seq")?;
                ensure!(id == format!("{uid}-{seq}"), "id {id} is not <requestUID>-<seq>");
                order.entry(uid.to_owned()).or_default().push(seq);
            }
        }
    }
    for request in requests {
        let uid = request.metadata.uid.clone().unwrap_or_default();
        let namespace = request.metadata.namespace.clone().unwrap_or_default();
        let name = request.metadata.name.clone().unwrap_or_default();
        let logbook = request
            .status
            .as_ref()
            .and_then(|s| s.logbook.clone())
            .unwrap_or_default();
        let seqs: Vec<u64> = logbook.entries.iter().map(|e| e.seq).collect();
        ensure!(
            order.get(&uid) == Some(&seqs),
            "{name}: first arrivals in order {:?}, the record holds {seqs:?}",
            order.get(&uid)
        );
        for entry in &logbook.entries {
            let id = passport_crds::logbook::LogbookRecord::entry_id(&uid, entry.seq);
            let event = first.get(&id).with_context(|| format!("{id} missing"))?;
            let (attributes, data) = (&event["attributes"], &event["data"]);
            let time = entry.time.0.to_string();
            let expected_attributes = serde_json::json!({
                "specversion": "1.0",
                "id": id,
                "type": format!("dev.passport.accessrequest.{}", entry.action),
                "source": SOURCE,
                "subject": format!("{namespace}/{name}"),
                "time": time,
                "datacontenttype": "application/json",
            });
            for (key, value) in expected_attributes.as_object().into_iter().flatten() {
                ensure!(
                    &attributes[key] == value,
                    "{id}: {key} is {}, expected {value}",
                    attributes[key]
                );
            }
            let expected_data = serde_json::json!({
                "requestUID": uid,
                "namespace": namespace,
                "name": name,
                "requester": request.spec.requester,
                "actor": entry.actor,
                "action": entry.action,
                "reason": entry.message,
                "ticket": request.spec.ticket,
                "targets": request.spec.targets.iter().map(|t| t.instance_id.clone()).collect::<Vec<_>>(),
                "time": time,
                "seq": entry.seq,
            });
            for (key, value) in expected_data.as_object().into_iter().flatten() {
                ensure!(
                    &data[key] == value,
                    "{id}: data.{key} is {}, expected {value}",
                    data[key]
                );
            }
        }
    }
    Ok(Delivered {
        events: events.len(),
        distinct: first.len(),
    })
}

/// The seqs of request `uid`'s events in the order they first arrived.
fn first_arrivals(events: &[Value], uid: &str) -> Vec<u64> {
    let mut seen = BTreeSet::new();
    events
        .iter()
        .filter(|e| e["data"]["requestUID"].as_str() == Some(uid))
        .filter_map(|e| e["data"]["seq"].as_u64())
        .filter(|seq| seen.insert(*seq))
        .collect()
}

/// (a) The receiver answers 503, then does not listen at all, during lifecycles; when it is back
/// every record arrives.
async fn receiver_outage() -> Result<()> {
    let mut receiver = Receiver::start(false, Some(AUTHORIZATION))?;
    let stack = SinkStack::start(sink_args(&receiver), None).await?;
    stack.auth_secret().await?;
    let instance = online_instance(&stack.emulator).await?;
    let s = stack.scenario("sink-outage", instance.id()).await?;
    let log = || stack.operator.log_tail();

    // A whole lifecycle with the receiver up.
    s.request("before", "alice", "1h", &[instance.id()])?;
    s.wait_phase("before", Phase::Active, ACTIVE_TIMEOUT).await?;
    complete(&s, "before").await?;
    s.wait_phase("before", Phase::Completed, ACTIVE_TIMEOUT).await?;
    all_delivered(&s.requests, || receiver.events())
        .await
        .with_context(log)?;

    // The outage: first 503s, then nothing listening.
    receiver.answer(503)?;
    let outage = Instant::now();
    let mut largest = 0;
    s.request("during", "alice", "1h", &[instance.id()])?;
    s.request("gone", "alice", "1h", &[instance.id()])?;
    s.wait_phase("during", Phase::Active, ACTIVE_TIMEOUT).await?;
    s.wait_phase("gone", Phase::Active, ACTIVE_TIMEOUT).await?;
    largest = largest.max(backlog(&s.requests).await?);
    // Deleted with every entry undelivered: access is revoked, but the object (and its record)
    // stays until the record has reached the sink.
    let gone_uid = s.requests.get("gone").await?.metadata.uid.unwrap_or_default();
    s.requests
        .delete("gone", &kube::api::DeleteParams::default())
        .await?;
    receiver.stop();
    complete(&s, "during").await?;
    s.request("across", "alice", "1h", &[instance.id()])?;
    s.wait_phase("during", Phase::Completed, ACTIVE_TIMEOUT).await?;
    s.wait_phase("across", Phase::Active, ACTIVE_TIMEOUT).await?;
    while outage.elapsed() < Duration::from_secs(20) {
        largest = largest.max(backlog(&s.requests).await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    largest = largest.max(backlog(&s.requests).await?);
    let held = receiver.events()?.len();
    ensure!(largest > 0, "nothing was held back during the outage");
    // Revoked (terminal), yet held by its finalizer while its record waits for the sink.
    let gone = s
        .wait_for("gone", "revoked, still held", ACTIVE_TIMEOUT, |r| {
            r.metadata.deletion_timestamp.is_some()
                && r.status.as_ref().is_some_and(|st| st.phase.is_terminal())
        })
        .await?;
    let gone_seq = gone
        .status
        .as_ref()
        .and_then(|st| st.logbook.as_ref())
        .map_or(0, |l| l.last_seq());
    // The operator's own view: the same backlog, an age, and both kinds of failure counted.
    eventually(Duration::from_secs(10), || async {
        let (exported, held) = (
            metric(&stack.operator, "passport_logbook_backlog", &[]).await?,
            backlog(&s.requests).await?,
        );
        ensure!(
            exported == held as f64,
            "passport_logbook_backlog {exported}, the records hold {held}"
        );
        Ok(())
    })
    .await?;
    let age = metric(
        &stack.operator,
        "passport_logbook_oldest_undelivered_seconds",
        &[],
    )
    .await?;
    ensure!(age >= 15.0, "the oldest undelivered entry is only {age} s old");
    for reason in ["http_5xx", "connect"] {
        let failures = metric(
            &stack.operator,
            "passport_logbook_delivery_failures_total",
            &[("reason", reason)],
        )
        .await?;
        ensure!(failures > 0.0, "no {reason} failure counted");
    }

    // Back, and answering normally again.
    receiver.answer(200)?;
    receiver.listen()?;
    let back = Instant::now();
    let requests = all_delivered(&s.requests, || receiver.events())
        .await
        .with_context(log)?;
    let caught_up = back.elapsed();
    s.wait_gone("gone", ACTIVE_TIMEOUT).await?;
    // The one still active ends with the receiver up.
    complete(&s, "across").await?;
    s.wait_phase("across", Phase::Completed, ACTIVE_TIMEOUT).await?;
    let requests = {
        drop(requests);
        all_delivered(&s.requests, || receiver.events())
            .await
            .with_context(log)?
    };
    let delivered = check_events(&receiver.events()?, &requests)?;
    // The deleted request's whole record arrived, in order, before it went.
    let seqs: Vec<u64> = first_arrivals(&receiver.events()?, &gone_uid);
    ensure!(
        seqs.iter().copied().eq(1..=gone_seq),
        "the deleted request's record arrived as {seqs:?}; it held {gone_seq} entries"
    );
    println!(
        "logbook_sink outage: {:.0} s (503, then not listening); largest backlog held: {largest} entries \
         (with the {} of a request deleted meanwhile, held until they reached the sink); {held} events before it; \
         sink back → last record delivered in {:.1} s; {} events received, {} distinct, {} duplicates",
        (back - outage).as_secs_f64(),
        seqs.len(),
        caught_up.as_secs_f64(),
        delivered.events,
        delivered.distinct,
        delivered.events - delivered.distinct,
    );
    Ok(())
}

/// (b) The operator is SIGKILLed while records wait for a failing receiver; the next operator
/// delivers them.
async fn operator_killed() -> Result<()> {
    // Over HTTPS, trusting the receiver's own CA (--logbook-sink-ca).
    let receiver = Receiver::start(true, Some(AUTHORIZATION))?;
    receiver.answer(503)?;
    let mut stack = SinkStack::start(sink_args(&receiver), None).await?;
    stack.auth_secret().await?;
    let instance = online_instance(&stack.emulator).await?;
    let namespace = "sink-crash";
    let undelivered = {
        let s = stack.scenario(namespace, instance.id()).await?;
        s.request("first", "alice", "1h", &[instance.id()])?;
        s.request("second", "alice", "1h", &[instance.id()])?;
        s.wait_phase("first", Phase::Active, ACTIVE_TIMEOUT).await?;
        s.wait_phase("second", Phase::Active, ACTIVE_TIMEOUT).await?;
        backlog(&s.requests).await?
    };
    ensure!(undelivered > 0, "nothing undelivered before the kill");
    stack.crash_and_restart()?;
    let restarted = Instant::now();
    receiver.answer(200)?;
    let s = stack.scenario(namespace, instance.id()).await?;
    let requests = all_delivered(&s.requests, || receiver.events())
        .await
        .with_context(|| stack.operator.log_tail())?;
    let caught_up = restarted.elapsed();
    check_events(&receiver.events()?, &requests)?;
    // And the new leader goes on: a completion is delivered too.
    complete(&s, "first").await?;
    s.wait_phase("first", Phase::Completed, ACTIVE_TIMEOUT).await?;
    let requests = all_delivered(&s.requests, || receiver.events())
        .await
        .with_context(|| stack.operator.log_tail())?;
    let delivered = check_events(&receiver.events()?, &requests)?;
    println!(
        "logbook_sink crash: {undelivered} entries undelivered at the SIGKILL; restart → all delivered in {:.1} s; \
         {} events received, {} distinct",
        caught_up.as_secs_f64(),
        delivered.events,
        delivered.distinct,
    );
    Ok(())
}

/// (c) `--logbook-stdout` alone: each record one CloudEvent JSON line on stdout, and printing
/// counts as delivery.
async fn stdout_lines() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("passport-logbook-stdout-")
        .tempdir()?;
    let stdout = dir.path().join("stdout.jsonl");
    let stack = SinkStack::start(
        vec!["--logbook-stdout".to_owned(), format!("--cluster-name={CLUSTER}")],
        Some(stdout.clone()),
    )
    .await?;
    let instance = online_instance(&stack.emulator).await?;
    let s = stack.scenario("sink-stdout", instance.id()).await?;
    s.request("printed", "alice", "1h", &[instance.id()])?;
    s.wait_phase("printed", Phase::Active, ACTIVE_TIMEOUT).await?;
    complete(&s, "printed").await?;
    s.wait_phase("printed", Phase::Completed, ACTIVE_TIMEOUT).await?;
    // The structured CloudEvent is the line itself: split it as a receiver's record.
    let events = || -> Result<Vec<Value>> {
        Ok(json_lines(&stdout)?
            .into_iter()
            .map(|mut line| {
                let data = line
                    .as_object_mut()
                    .and_then(|o| o.remove("data"))
                    .unwrap_or_default();
                serde_json::json!({ "attributes": line, "data": data })
            })
            .collect())
    };
    let requests = all_delivered(&s.requests, events)
        .await
        .with_context(|| stack.operator.log_tail())?;
    let delivered = check_events(&events()?, &requests)?;
    println!(
        "logbook_sink stdout: {} JSON lines, {} distinct records",
        delivered.events, delivered.distinct
    );
    Ok(())
}

/// Fail closed: with the receiver failing and `--logbook-backlog-limit=3` reached, a new approved
/// request stays Pending (AuditSinkAvailable=False, AuditSinkUnavailable) until the records are
/// delivered; then it is granted.
async fn full_backlog() -> Result<()> {
    let receiver = Receiver::start(false, Some(AUTHORIZATION))?;
    receiver.answer(503)?;
    let mut args = sink_args(&receiver);
    args.push("--logbook-backlog-limit=3".to_owned());
    let stack = SinkStack::start(args, None).await?;
    stack.auth_secret().await?;
    let instance = online_instance(&stack.emulator).await?;
    let s = stack.scenario("sink-full", instance.id()).await?;
    let log = || stack.operator.log_tail();
    s.request("first", "alice", "1h", &[instance.id()])?;
    s.wait_phase("first", Phase::Active, ACTIVE_TIMEOUT).await?;
    eventually(Duration::from_secs(30), || async {
        let exported = metric(&stack.operator, "passport_logbook_backlog", &[]).await?;
        ensure!(exported >= 3.0, "backlog {exported}");
        Ok(exported)
    })
    .await?;
    s.request("held", "alice", "1h", &[instance.id()])?;
    let unavailable = |r: &AccessRequest| {
        r.status.as_ref().is_some_and(|status| {
            conditions::find(&status.conditions, condition_types::AUDIT_SINK_AVAILABLE)
                .is_some_and(|c| c.status == "False" && c.reason == "AuditSinkUnavailable")
        })
    };
    let held_since = Instant::now();
    s.wait_for("held", "AuditSinkAvailable=False", ACTIVE_TIMEOUT, unavailable)
        .await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let held = s.requests.get("held").await?;
    let phase = held.status.as_ref().map(|st| st.phase);
    ensure!(
        phase == Some(Phase::Pending) && unavailable(&held),
        "granted while the backlog is full: {:?}",
        held.status
    );
    let backlog_held = backlog(&s.requests).await?;
    let message = held
        .status
        .as_ref()
        .and_then(|st| conditions::find(&st.conditions, condition_types::AUDIT_SINK_AVAILABLE))
        .map(|c| c.message.clone())
        .unwrap_or_default();

    receiver.answer(200)?;
    let back = Instant::now();
    s.wait_phase("held", Phase::Active, ACTIVE_TIMEOUT).await?;
    let granted = back.elapsed();
    let requests = all_delivered(&s.requests, || receiver.events())
        .await
        .with_context(log)?;
    check_events(&receiver.events()?, &requests)?;
    println!(
        "logbook_sink full backlog: a new request held Pending {:.0} s at a backlog of {backlog_held} (limit 3): \"{message}\"; \
         sink back → granted (Active) in {:.1} s",
        (back - held_since).as_secs_f64(),
        granted.as_secs_f64(),
    );
    Ok(())
}

/// Per-request order, global fairness: the receiver answers 500 to every record of one request;
/// the others' records flow meanwhile (whole lifecycles), the refused one's wait in order, and
/// arrive once the receiver takes them.
async fn refused_request() -> Result<()> {
    let receiver = Receiver::start(false, Some(AUTHORIZATION))?;
    let namespace = "sink-refused";
    receiver.refuse(&[&format!("{namespace}/bad")])?;
    let stack = SinkStack::start(sink_args(&receiver), None).await?;
    stack.auth_secret().await?;
    let instance = online_instance(&stack.emulator).await?;
    let s = stack.scenario(namespace, instance.id()).await?;
    let log = || stack.operator.log_tail();
    let refused_from = Instant::now();
    s.request("bad", "alice", "1h", &[instance.id()])?;
    s.wait_phase("bad", Phase::Active, ACTIVE_TIMEOUT).await?;
    for name in ["good-1", "good-2"] {
        s.request(name, "alice", "1h", &[instance.id()])?;
        s.wait_phase(name, Phase::Active, ACTIVE_TIMEOUT).await?;
        complete(&s, name).await?;
        s.wait_phase(name, Phase::Completed, ACTIVE_TIMEOUT).await?;
    }
    // Every record of the others arrives while none of the refused one's does.
    let held = eventually(DELIVERY_TIMEOUT, || async {
        let mut held = 0;
        for request in s.requests.list(&ListParams::default()).await?.items {
            let name = request.metadata.name.clone().unwrap_or_default();
            let logbook = request
                .status
                .as_ref()
                .and_then(|st| st.logbook.clone())
                .unwrap_or_default();
            if name == "bad" {
                ensure!(logbook.delivered == 0, "bad: delivered {}", logbook.delivered);
                held = logbook.last_seq();
            } else {
                ensure!(
                    logbook.delivered == logbook.last_seq(),
                    "{name}: delivered {} of {}",
                    logbook.delivered,
                    logbook.last_seq()
                );
            }
        }
        Ok(held)
    })
    .await
    .with_context(log)?;
    let bad_uid = s.requests.get("bad").await?.metadata.uid.unwrap_or_default();
    ensure!(
        first_arrivals(&receiver.events()?, &bad_uid).is_empty(),
        "a refused record was recorded"
    );
    let failures = metric(
        &stack.operator,
        "passport_logbook_delivery_failures_total",
        &[("reason", "http_5xx")],
    )
    .await?;
    ensure!(failures > 0.0, "no refusal counted");

    receiver.refuse(&[])?;
    let taken = Instant::now();
    let requests = all_delivered(&s.requests, || receiver.events())
        .await
        .with_context(log)?;
    let caught_up = taken.elapsed();
    let delivered = check_events(&receiver.events()?, &requests)?;
    println!(
        "logbook_sink refused request: the others' records delivered while its {held} waited \
         ({failures} refusals over {:.0} s); refusal lifted → delivered in {:.1} s, in order; {} events, {} distinct",
        (taken - refused_from).as_secs_f64(),
        caught_up.as_secs_f64(),
        delivered.events,
        delivered.distinct,
    );
    Ok(())
}
