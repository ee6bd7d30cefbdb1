//! The controller shells without a server: a mock apiserver (tower-test) answers exactly the calls a
//! scenario expects, in order, and the test asserts what the reconcile sent and returned.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Method, Request, Response, StatusCode};
use kube::{
    Client,
    client::Body,
    runtime::{
        events::{Recorder, Reporter},
        reflector, watcher,
    },
};
use passport_core::{
    account::Account, credentials::SessionCredentials, lifecycle::Invocation, ssh_ca::Authority,
};
use passport_crds::{
    AccessPolicy, AccessPolicySpec, AccessRequest, AccessRequestSpec, AwsAccount, AwsAccountSpec, Phase,
    access_policy::{AutoApproveRule, TargetSelector},
    access_request::{AccessRequestStatus, Platform, TargetState, TargetStatus},
    common::Subjects,
    common::Time,
    conditions::{self, ConditionStatus, types::RECONCILED},
};
use serde_json::Value;
use tower_test::mock::{Handle, SendResponse};

use super::{Context, Error, FINALIZER, Limiter, access_request};
use crate::{
    aws::{AwsError, Ec2Instance, Fleet, RunCommand, ScopedSession},
    metrics::Metrics,
};

static AUTHORITY: std::sync::LazyLock<Authority> =
    std::sync::LazyLock::new(|| Authority::generate().expect("generate the CA"));

const TARGET: &str = "i-0123456789abcdef0";
const REQUEST_PATH: &str = "/apis/passport.dev/v1alpha1/namespaces/team-a/accessrequests/r";

/// Records what was sent; every instance is a managed Linux box whose commands succeed at once.
#[derive(Debug, Default)]
struct RecordingFleet {
    sent: Mutex<Vec<String>>,
}

impl Fleet for RecordingFleet {
    async fn managed_instances(
        &self,
        _: &Account,
        ids: &[String],
    ) -> Result<BTreeMap<String, Option<Platform>>, AwsError> {
        Ok(ids.iter().map(|id| (id.clone(), Some(Platform::Linux))).collect())
    }

    async fn describe_instances(
        &self,
        _: &Account,
        _: &[String],
    ) -> Result<BTreeMap<String, Ec2Instance>, AwsError> {
        Ok(BTreeMap::new())
    }

    async fn find_command(&self, _: &Account, _: &str, comment: &str) -> Result<Option<String>, AwsError> {
        let sent = self.sent.lock().expect("lock");
        Ok(sent
            .iter()
            .rposition(|c| c == comment)
            .map(|i| format!("cmd-{}", i + 1)))
    }

    async fn send_command(&self, _: &Account, command: RunCommand<'_>) -> Result<String, AwsError> {
        let mut sent = self.sent.lock().expect("lock");
        sent.push(command.comment.to_owned());
        Ok(format!("cmd-{}", sent.len()))
    }

    async fn invocations(
        &self,
        _: &Account,
        _: &str,
        instance_ids: &[String],
        _: bool,
    ) -> Result<BTreeMap<String, Result<Invocation, AwsError>>, AwsError> {
        let done = Invocation::Succeeded {
            stdout: String::new(),
        };
        Ok(instance_ids
            .iter()
            .map(|id| (id.clone(), Ok(done.clone())))
            .collect())
    }

    async fn verify(&self, _: &Account) -> Result<String, AwsError> {
        Ok("arn:aws:sts::123456789012:assumed-role/passport/test".into())
    }

    async fn ensure_session_documents(&self, _: &Account) -> Result<(), AwsError> {
        Ok(())
    }

    async fn terminate_sessions(&self, _: &Account, _: &[String], _: &str) -> Result<Vec<String>, AwsError> {
        Ok(Vec::new())
    }

    async fn assume_scoped(&self, _: &Account, _: ScopedSession<'_>) -> Result<SessionCredentials, AwsError> {
        Err(AwsError::Other("not used by these tests".into()))
    }
}

/// The apiserver's side of the mock: each `expect` takes the next request and checks its verb and path.
struct Apiserver(Handle<Request<Body>, Response<Body>>);

struct Call {
    body: Value,
    respond: SendResponse<Response<Body>>,
}

impl Apiserver {
    async fn expect(&mut self, method: Method, path: &str) -> Call {
        let (request, respond) = tokio::time::timeout(Duration::from_secs(30), self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("no {method} {path} came"))
            .expect("the client is gone");
        assert_eq!(request.method(), method, "{}", request.uri());
        assert!(
            request.uri().path().starts_with(path),
            "{method} {} is not {path}",
            request.uri()
        );
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Call { body, respond }
    }

    /// An Event create, answered with the Event itself.
    async fn event(&mut self) -> Value {
        let call = self
            .expect(Method::POST, "/apis/events.k8s.io/v1/namespaces/team-a/events")
            .await;
        let body = call.body.clone();
        call.ok(&body);
        body
    }
}

impl Call {
    /// The status a JSON-patch status write puts in place.
    fn status(&self) -> &Value {
        let operations = self.body.as_array().expect("a JSON patch");
        let add = operations
            .iter()
            .find(|op| op["op"] == "add" && op["path"] == "/status");
        &add.expect("the patch writes the status")["value"]
    }

    /// The value a JSON-patch write puts at `path`.
    fn written(&self, path: &str) -> &Value {
        let operations = self.body.as_array().expect("a JSON patch");
        let add = operations
            .iter()
            .find(|op| op["op"] == "add" && op["path"] == path);
        &add.unwrap_or_else(|| panic!("the patch writes {path}"))["value"]
    }

    /// The JSON pointers the write is conditional on.
    fn tested(&self) -> Vec<&str> {
        let operations = self.body.as_array().expect("a JSON patch");
        operations
            .iter()
            .filter(|op| op["op"] == "test")
            .filter_map(|op| op["path"].as_str())
            .collect()
    }

    fn ok(self, body: &impl serde::Serialize) {
        let bytes = serde_json::to_vec(body).expect("json");
        self.respond
            .send_response(Response::builder().body(Body::from(bytes)).expect("response"));
    }

    fn fail(self, code: StatusCode) {
        let status = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "refused by the test", "reason": "Conflict", "code": code.as_u16(),
        });
        let bytes = serde_json::to_vec(&status).expect("json");
        let response = Response::builder()
            .status(code)
            .body(Body::from(bytes))
            .expect("response");
        self.respond.send_response(response);
    }
}

/// The AwsAccount `prod`, open to team-a, in the cache the decisions read.
fn accounts() -> reflector::Store<AwsAccount> {
    let (store, mut writer) = reflector::store();
    let spec = AwsAccountSpec {
        role_arn: "arn:aws:iam::123456789012:role/passport".into(),
        region: "eu-west-1".into(),
        external_id: None,
        allowed_namespaces: vec!["team-a".into()],
    };
    writer.apply_watcher_event(&watcher::Event::Apply(AwsAccount::new("prod", spec)));
    store
}

fn context(client: Client) -> Arc<Context<RecordingFleet>> {
    let (metrics, _) = Metrics::new().expect("metrics");
    let reporter = Reporter {
        controller: "passport-operator".into(),
        instance: None,
    };
    Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter.clone()),
        logbook_events: crate::cluster::events::LogbookEvents::new(client.clone(), reporter),
        client,
        namespace: "passport-system".into(),
        fleet: RecordingFleet::default(),
        authority: AUTHORITY.clone(),
        metrics,
        limiter: Limiter::default(),
        ledgers: super::Ledgers::default(),
        policies: reflector::store().0,
        reviews: reflector::store().0,
        accounts: accounts(),
        requests: reflector::store().0,
        holders: crate::cluster::holders::HolderIndex::default(),
        certificate_ttl: Duration::from_secs(300),
        finished_retention: passport_core::lifecycle::DEFAULT_RETENTION,
        audit_gate: crate::logbook_sink::AuditGate::disabled(),
        unrecorded: Default::default(),
    })
}

fn request() -> AccessRequest {
    let mut request = AccessRequest::new("r", AccessRequestSpec::new("alice", "incident", [TARGET]));
    request.metadata.namespace = Some("team-a".into());
    request.metadata.uid = Some("uid-r".into());
    request.metadata.resource_version = Some("1".into());
    request.metadata.generation = Some(1);
    request
}

fn with_finalizer(mut request: AccessRequest) -> AccessRequest {
    request.metadata.finalizers = Some(vec![FINALIZER.into()]);
    request
}

fn deleted(mut request: AccessRequest, phase: Phase, state: TargetState) -> AccessRequest {
    let whole_second = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("now");
    request.metadata.deletion_timestamp = Some(Time(whole_second));
    request.status = Some(AccessRequestStatus {
        phase,
        username: Some("rs-00000000".into()),
        account: Some("prod".into()),
        targets: vec![TargetStatus {
            instance_id: TARGET.into(),
            platform: Some(Platform::Linux),
            state,
            ..TargetStatus::default()
        }],
        ..AccessRequestStatus::default()
    });
    request
}

fn start(
    request: AccessRequest,
) -> (
    Apiserver,
    Arc<Context<RecordingFleet>>,
    tokio::task::JoinHandle<Result<kube::runtime::controller::Action, Error>>,
) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ctx = context(Client::new(service, "default"));
    let reconcile = tokio::spawn(access_request::reconcile(Arc::new(request), ctx.clone()));
    (Apiserver(handle), ctx, reconcile)
}

#[tokio::test]
async fn the_finalizer_is_added_before_anything_else_then_the_request_is_decided() {
    let (mut apiserver, _ctx, reconcile) = start(request());
    let call = apiserver.expect(Method::PATCH, REQUEST_PATH).await;
    assert_eq!(
        call.body[0]["op"], "test",
        "guarded by a test of the current finalizers"
    );
    assert_eq!(
        call.body[1],
        serde_json::json!({ "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] })
    );
    call.ok(&with_finalizer(request()));

    let call = apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await;
    assert_eq!(
        call.tested(),
        [
            "/metadata/generation",
            "/metadata/deletionTimestamp",
            "/metadata/finalizers",
            "/status"
        ],
        "fenced by what the decision read"
    );
    assert_eq!(call.status()["phase"], "Pending");
    let reason = &call.status()["conditions"][0]["reason"];
    assert_eq!(reason, "NoPolicy", "no AccessPolicy: it waits, and says why");
    call.ok(&with_finalizer(request()));
    assert_eq!(apiserver.event().await["reason"], "Created");

    let action = reconcile.await.expect("joined").expect("reconciled");
    assert!(
        format!("{action:?}").contains("requeue_after: Some"),
        "{action:?}"
    );
}

#[tokio::test]
async fn a_conflicting_status_write_is_retried_quietly() {
    let (mut apiserver, ctx, reconcile) = start(with_finalizer(request()));
    apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await
        .fail(StatusCode::CONFLICT);
    let err = reconcile
        .await
        .expect("joined")
        .expect_err("the write conflicted");
    assert!(matches!(err, Error::Conflict), "{err}");
    assert_eq!(super::retry_after(&err), Duration::from_millis(200));
    drop(ctx);
    // Nothing more reaches the apiserver: a conflict is routine, neither an Event nor a condition.
    assert!(apiserver.0.next_request().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_status_write_that_hangs_times_out_and_the_failure_shows_on_the_object() {
    let (mut apiserver, _ctx, reconcile) = start(with_finalizer(request()));
    let hanging = apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await;
    let warning = apiserver.event().await;
    assert_eq!(
        (warning["type"].as_str(), warning["reason"].as_str()),
        (Some("Warning"), Some("StatusTimeout"))
    );
    assert!(
        warning["note"]
            .as_str()
            .is_some_and(|n| n.contains("did not finish within 10s")),
        "{warning}"
    );
    let call = apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await;
    let conditions: Vec<passport_crds::common::Condition> =
        serde_json::from_value(call.body["status"]["conditions"].clone()).expect("conditions");
    let reconciled = conditions::observe(&conditions, RECONCILED).expect("Reconciled condition");
    assert_eq!(
        (reconciled.status, reconciled.reason),
        (ConditionStatus::False, "StatusTimeout")
    );
    call.ok(&with_finalizer(request()));
    let err = reconcile.await.expect("joined").expect_err("timed out");
    assert!(matches!(err, Error::StatusTimeout(_)), "{err}");
    drop(hanging);
}

#[tokio::test]
async fn a_deleted_request_that_ended_releases_its_finalizer() {
    let request = deleted(with_finalizer(request()), Phase::Completed, TargetState::Removed);
    let (mut apiserver, ctx, reconcile) = start(request.clone());
    let call = apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await;
    call.ok(&request);
    let call = apiserver.expect(Method::PATCH, REQUEST_PATH).await;
    assert_eq!(
        call.body,
        serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER },
            { "op": "remove", "path": "/metadata/finalizers/0" },
        ])
    );
    call.ok(&request);
    reconcile.await.expect("joined").expect("reconciled");
    assert!(
        ctx.fleet.sent.lock().expect("lock").is_empty(),
        "nothing left to revoke"
    );
}

/// A deleted Active request's first pass: its revoke intent is written, then the revoke sent.
/// Returns the request as the intent left it in the apiserver.
async fn revoke_sent() -> (Apiserver, Arc<Context<RecordingFleet>>, AccessRequest) {
    let request = deleted(with_finalizer(request()), Phase::Active, TargetState::Ready);
    let (mut apiserver, ctx, reconcile) = start(request.clone());
    let intent = apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await;
    assert!(intent.tested().contains(&"/status"), "the intent is fenced");
    assert_eq!(intent.status()["phase"], "Revoking");
    assert_eq!(intent.status()["targets"][0]["state"], "Removing");
    assert!(intent.status()["targets"][0].get("commandId").is_none());
    assert!(
        ctx.fleet.sent.lock().expect("lock").is_empty(),
        "nothing sent before the intent is stored"
    );
    let mut recorded = request.clone();
    recorded.status = Some(serde_json::from_value(intent.status().clone()).expect("a status"));
    intent.ok(&request);
    let action = reconcile.await.expect("joined").expect("reconciled");
    assert_eq!(
        *ctx.fleet.sent.lock().expect("lock"),
        ["passport revoke uid-r team-a/r"]
    );
    assert!(
        format!("{action:?}").contains("requeue_after: Some"),
        "polls the revoke soon: {action:?}"
    );
    (apiserver, ctx, recorded)
}

#[tokio::test]
async fn a_revoke_is_recorded_before_it_is_sent_and_its_command_with_its_outcome() {
    let (mut apiserver, ctx, recorded) = revoke_sent().await;
    // The next pass, on the intent as stored: it follows the command sent (kept in memory) and writes
    // its outcome; the id is not written on its own in between.
    let next = tokio::spawn(access_request::reconcile(Arc::new(recorded), ctx.clone()));
    let outcome = apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await;
    assert!(
        outcome.tested().contains(&"/status"),
        "fenced by the intent it completes"
    );
    assert_eq!(outcome.status()["targets"][0]["state"], "Removed");
    drop(apiserver);
    let _ = next.await;
    assert_eq!(ctx.fleet.sent.lock().expect("lock").len(), 1, "sent once");
}

#[tokio::test]
async fn ids_kept_for_a_pass_whose_decision_conflicts_are_written_on_their_own() {
    let (mut apiserver, ctx, recorded) = revoke_sent().await;
    let next = tokio::spawn(access_request::reconcile(Arc::new(recorded.clone()), ctx.clone()));
    // Something else changed the status meanwhile (the sink advancing `delivered`, say).
    apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await
        .fail(StatusCode::UNPROCESSABLE_ENTITY);
    let ids = apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await;
    assert_eq!(ids.tested(), ["/status/targets"], "fenced by the intent only");
    assert_eq!(ids.written("/status/targets")[0]["commandId"], "cmd-1");
    ids.ok(&recorded);
    assert!(
        matches!(next.await.expect("joined"), Err(Error::Conflict)),
        "the decision itself is retried"
    );
    assert!(ctx.unrecorded.drain().is_empty(), "nothing left kept");
}

#[tokio::test]
async fn a_conflicting_intent_sends_nothing() {
    let mut policy = AccessPolicy::new(
        "ops",
        AccessPolicySpec {
            requesters: Subjects {
                users: vec!["alice".into()],
                groups: vec![],
            },
            targets: TargetSelector {
                instance_ids: vec![TARGET.into()],
                tags: BTreeMap::new(),
            },
            max_duration: "4h".into(),
            approval: Default::default(),
            auto_approve: vec![AutoApproveRule {
                requesters: Subjects {
                    users: vec!["alice".into()],
                    groups: vec![],
                },
                max_duration: None,
            }],
            require_ticket: false,
            pending_timeout: "1h".into(),
            gitops_appliers: Subjects::default(),
            default_account: None,
        },
    );
    policy.metadata.namespace = Some("team-a".into());
    let mut approved = with_finalizer(request());
    approved.spec.account = Some("prod".into());
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ctx = context(Client::new(service, "default"));
    let mut ctx = Arc::into_inner(ctx).expect("only reference");
    let (policies, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Apply(policy));
    ctx.policies = policies;
    let ctx = Arc::new(ctx);
    let reconcile = tokio::spawn(access_request::reconcile(Arc::new(approved.clone()), ctx.clone()));
    let mut apiserver = Apiserver(handle);
    let intent = apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await;
    assert_eq!(intent.status()["phase"], "Provisioning");
    assert_eq!(intent.status()["targets"][0]["attempts"], 1);
    // The requester completed the object meanwhile: the decision was made on an old version.
    intent.fail(StatusCode::CONFLICT);
    let err = reconcile.await.expect("joined").expect_err("conflict");
    assert!(matches!(err, Error::Conflict), "{err}");
    assert!(
        ctx.fleet.sent.lock().expect("lock").is_empty(),
        "no command on a decision not stored"
    );
}

#[tokio::test]
async fn labels_and_annotations_do_not_fence_a_decision() {
    let request = deleted(with_finalizer(request()), Phase::Active, TargetState::Ready);
    let (mut apiserver, _ctx, reconcile) = start(request.clone());
    let intent = apiserver
        .expect(Method::PATCH, &format!("{REQUEST_PATH}/status"))
        .await;
    // A requester patching labels in a loop cannot make this write conflict, so cannot starve it.
    assert!(
        intent
            .tested()
            .iter()
            .all(|path| !path.contains("labels") && !path.contains("annotations"))
    );
    assert!(
        intent
            .body
            .as_array()
            .expect("ops")
            .iter()
            .all(|op| op.get("resourceVersion").is_none())
    );
    intent.ok(&request);
    reconcile.await.expect("joined").expect("reconciled");
}

#[test]
fn caches_keep_no_managed_fields_nor_last_applied_copy() {
    use kube::api::ObjectMeta;
    let mut request = passport_crds::AccessRequest {
        metadata: ObjectMeta {
            name: Some("r".into()),
            annotations: Some(BTreeMap::from([
                (
                    crate::cluster::cache::LAST_APPLIED.to_owned(),
                    "{\"a\":\"whole object\"}".to_owned(),
                ),
                ("passport.dev/applied-by".to_owned(), "argocd".to_owned()),
            ])),
            managed_fields: Some(vec![Default::default()]),
            ..ObjectMeta::default()
        },
        spec: serde_json::from_value(serde_json::json!({
            "requester": "alice", "reason": "r", "targets": [{"instanceId": TARGET}]
        }))
        .expect("spec"),
        status: None,
    };
    crate::cluster::cache::slim(&mut request);
    assert!(request.metadata.managed_fields.is_none());
    let annotations = request.metadata.annotations.expect("annotations");
    assert_eq!(
        annotations.keys().collect::<Vec<_>>(),
        ["passport.dev/applied-by"]
    );
}
