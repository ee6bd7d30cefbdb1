//! The controllers: kube-runtime `Controller`s for AccessRequests, AwsAccounts and CredentialRequests.
//! Each reconcile gathers (caches, fresh reads, AWS), lets `passport_core` decide, and acts (SSM,
//! signing, one status write, Events). One watch per kind feeds both the controllers and the caches
//! the decisions read.

mod access_request;
mod aws_account;
mod credential_request;
mod gather;
mod judged;
mod ledgers;
mod report;
mod send;
#[cfg(test)]
mod tests;
mod unrecorded;

use std::{future::Future, sync::Arc, time::Duration};

use futures::{StreamExt, future};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        Controller, Predicate, WatchStreamExt,
        controller::{self, Action},
        events::{Recorder, Reporter},
        predicates,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use passport_core::ssh_ca::Authority;
use passport_crds::{AccessPolicy, AccessRequest, AccessReview, AwsAccount, CredentialRequest};

pub use crate::error::Error;
pub use ledgers::Ledgers;
pub use report::Limiter;

use crate::{
    aws::Fleet,
    cluster::{
        cache::{RequestCache, slim},
        events::LogbookEvents,
        holders::HolderIndex,
    },
    logbook_sink::AuditGate,
    metrics::Metrics,
};

/// The finalizer that keeps an AccessRequest until everything it granted is revoked.
pub const FINALIZER: &str = "passport.dev/revoke";
/// How many watch events a shared stream buffers for a slow subscriber.
const SHARED_BUFFER: usize = 1024;

/// Everything a reconciliation may use.
pub struct Context<F> {
    pub client: Client,
    /// The operator's own namespace: its CA Secret and per-request Secrets live here.
    pub namespace: String,
    pub fleet: F,
    pub authority: Authority,
    /// Warning Events for failures.
    pub recorder: Recorder,
    pub logbook_events: LogbookEvents,
    pub metrics: Metrics,
    pub limiter: Limiter,
    /// Per-AccessRequest credential issuing: reuse, rate limit, one issue at a time.
    pub ledgers: Ledgers,
    pub policies: Store<AccessPolicy>,
    pub reviews: Store<AccessReview>,
    pub accounts: Store<AwsAccount>,
    pub requests: Store<AccessRequest>,
    /// Who holds an account on each Windows instance, kept from the AccessRequest cache's events.
    pub holders: HolderIndex,
    /// How long issued SSH certificates last (`--certificate-ttl`).
    pub certificate_ttl: Duration,
    /// How long a finished AccessRequest stays before it is deleted (`--finished-retention`).
    pub finished_retention: Duration,
    /// Shut while the Logbook's audit sink is too far behind: nothing new is granted then.
    pub audit_gate: AuditGate,
    /// Command ids sent, kept for the next pass to record with their outcome.
    pub unrecorded: unrecorded::Unrecorded,
}

impl<F> std::fmt::Debug for Context<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl<F> Context<F> {
    /// The objects of `namespace` in a cache.
    fn in_namespace<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>, namespace: &str) -> Vec<K> {
        store
            .state()
            .into_iter()
            .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
            .map(|o| (*o).clone())
            .collect()
    }

    fn policies_in(&self, namespace: &str) -> Vec<AccessPolicy> {
        Self::in_namespace(&self.policies, namespace)
    }

    fn reviews_in(&self, namespace: &str) -> Vec<AccessReview> {
        Self::in_namespace(&self.reviews, namespace)
    }

    fn account(&self, name: &str) -> Option<AwsAccount> {
        self.accounts.get(&ObjectRef::new(name)).map(|a| (*a).clone())
    }
}

/// What the controllers need besides the API client.
#[derive(Debug)]
pub struct Settings<F> {
    pub namespace: String,
    pub fleet: F,
    pub authority: Authority,
    pub metrics: Metrics,
    pub certificate_ttl: Duration,
    pub finished_retention: Duration,
    pub audit_gate: AuditGate,
    /// Reconciles of one kind running at once (`--max-concurrent-reconciles`): each holds an SSM
    /// call's buffers, so a burst of thousands would otherwise hold thousands of them.
    pub concurrency: u16,
}

/// A shared watch of every `K`: the cache, the changes for controllers, the deletions (which shared
/// streams leave out), and the task that drives them.
struct SharedWatch<K: Resource<DynamicType = ()> + Clone + 'static, D> {
    store: Store<K>,
    changes: reflector::ReflectHandle<K>,
    deletions: futures::channel::mpsc::UnboundedReceiver<K>,
    driver: D,
}

fn shared_watch<K>(api: Api<K>) -> SharedWatch<K, impl Future<Output = ()>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store_shared(SHARED_BUFFER);
    let changes = writer.subscribe().expect("a shared store has a dispatcher");
    let (deleted, deletions) = futures::channel::mpsc::unbounded();
    let driver = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(slim)
        .reflect_shared(writer)
        .for_each(move |event| {
            if let Ok(watcher::Event::Delete(object)) = event {
                // Nobody listening is fine: only some kinds' deletions matter.
                let _ = deleted.unbounded_send(object);
            }
            future::ready(())
        });
    SharedWatch {
        store,
        changes,
        deletions,
        driver,
    }
}

/// Runs every controller until `shutdown` resolves.
pub async fn run<F: Fleet>(
    client: Client,
    settings: Settings<F>,
    mut cache: RequestCache,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let policies = shared_watch(Api::<AccessPolicy>::all(client.clone()));
    let reviews = shared_watch(Api::<AccessReview>::all(client.clone()));
    let accounts = shared_watch(Api::<AwsAccount>::all(client.clone()));
    let (policy_changes, review_changes) = (policies.changes, reviews.changes);
    let (policy_judgements, review_judgements) = (policy_changes.clone(), review_changes.clone());
    let (account_changes, account_deletions) = (accounts.changes, accounts.deletions);
    let account_changes_for_requests = account_changes.clone();
    tokio::spawn(policies.driver);
    tokio::spawn(reviews.driver);
    tokio::spawn(accounts.driver);
    let (policies, reviews, accounts) = (policies.store, reviews.store, accounts.store);
    // A decision on a half-filled cache (say, an AwsAccount not yet seen) could fail a request for good.
    let synced = future::join3(
        policies.wait_until_ready(),
        reviews.wait_until_ready(),
        accounts.wait_until_ready(),
    );
    if synced.await.0.is_err() {
        tracing::error!("a watch stopped before its cache was ready");
        return;
    }
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));

    let holders = HolderIndex::default();
    let index = holders.clone();
    cache.observe(move |event| index.observe(event));
    // Our own status writes would retrigger reconciles; only spec, deletion and finalizer changes do.
    let requests = cache.store();
    let request_changes = cache.watch(client.clone()).applied_objects().predicate_filter(
        predicates::generation.combine(predicates::finalizers),
        Default::default(),
    );
    let reporter = Reporter {
        controller: "passport-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter.clone()),
        logbook_events: LogbookEvents::new(client.clone(), reporter),
        client: client.clone(),
        namespace: settings.namespace,
        fleet: settings.fleet,
        authority: settings.authority,
        metrics: settings.metrics,
        limiter: Limiter::default(),
        ledgers: Ledgers::default(),
        policies,
        reviews,
        accounts: accounts.clone(),
        requests: requests.clone(),
        holders,
        certificate_ttl: settings.certificate_ttl,
        finished_retention: settings.finished_retention,
        audit_gate: settings.audit_gate,
        unrecorded: Default::default(),
    });
    let config = || controller::Config::default().concurrency(settings.concurrency);
    tokio::spawn(count_from_cache(requests.clone(), ctx.metrics.clone()));
    let live_in_namespace = requests.clone();
    let live_using_account = requests.clone();
    let using_account = move |name: &str| -> Vec<ObjectRef<AccessRequest>> {
        live_using_account
            .state()
            .into_iter()
            .filter(|r| !r.phase().is_terminal())
            .filter(|r| r.status.as_ref().and_then(|s| s.account.as_deref()) == Some(name))
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect()
    };
    let using_deleted_account = using_account.clone();
    let request_controller = Controller::for_stream(request_changes, requests)
        .with_config(config())
        .watches_shared_stream(review_changes, |review| {
            let namespace = review.namespace()?;
            Some(ObjectRef::new(&review.spec.access_request).within(&namespace))
        })
        .watches_shared_stream(policy_changes, move |policy| {
            let namespace = policy.namespace();
            live_in_namespace
                .state()
                .into_iter()
                .filter(|r| r.namespace() == namespace && !r.phase().is_terminal())
                .map(|r| ObjectRef::from_obj(r.as_ref()))
                .collect::<Vec<_>>()
        })
        // An AwsAccount deleted, or no longer open to a namespace, revokes what its requests granted.
        .watches_shared_stream(account_changes_for_requests, move |account| {
            using_account(&account.name_any())
        })
        .reconcile_on(
            account_deletions
                .flat_map(move |account| futures::stream::iter(using_deleted_account(&account.name_any()))),
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(
            access_request::reconcile,
            error_policy::<AccessRequest, F>,
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    let account_controller = Controller::for_shared_stream(account_changes, accounts)
        .with_config(config())
        .graceful_shutdown_on(shutdown.clone())
        .run(aws_account::reconcile, error_policy::<AwsAccount, F>, ctx.clone())
        .for_each(|_| future::ready(()));

    let review_controller = Controller::for_shared_stream(review_judgements, ctx.reviews.clone())
        .with_config(config())
        .graceful_shutdown_on(shutdown.clone())
        .run(judged::review, error_policy::<AccessReview, F>, ctx.clone())
        .for_each(|_| future::ready(()));

    let policy_controller = Controller::for_shared_stream(policy_judgements, ctx.policies.clone())
        .with_config(config())
        .graceful_shutdown_on(shutdown.clone())
        .run(judged::policy, error_policy::<AccessPolicy, F>, ctx.clone())
        .for_each(|_| future::ready(()));

    let stopping = ctx.clone();
    let credential_controller =
        // Unbounded: its reconciles wait in turn on their AccessRequest's ledger, and a requester
        // queueing many on one request must not take every slot from the others.
        Controller::new(Api::<CredentialRequest>::all(client), watcher::Config::default())
            .graceful_shutdown_on(shutdown)
            .run(
                credential_request::reconcile,
                error_policy::<CredentialRequest, F>,
                ctx,
            )
            .for_each(|_| future::ready(()));

    tokio::join!(
        request_controller,
        account_controller,
        review_controller,
        policy_controller,
        credential_controller
    );
    // Ids of commands sent whose next pass will not come in this process: into status now, not
    // left to the next leader's lost-send lookup.
    for kept in stopping.unrecorded.drain() {
        let api = Api::namespaced(stopping.client.clone(), &kept.namespace);
        if let Err(err) = access_request::record_kept(&api, &kept).await {
            tracing::warn!(request = %kept.name, %err, "could not record the ids of commands sent");
        }
    }
}

/// Keeps the per-phase and stuck-revocations gauges true to the cache, also after an administrator
/// let a stuck request go (it is then never reconciled again).
async fn count_from_cache(requests: Store<AccessRequest>, metrics: Metrics) {
    loop {
        let state = requests.state();
        metrics.lifecycle.count(state.iter().map(|r| r.phase()));
        let stuck = state
            .iter()
            .filter(|r| {
                r.status
                    .as_ref()
                    .is_some_and(|s| passport_core::lifecycle::stuck(&s.targets).next().is_some())
            })
            .count();
        metrics
            .revocations_stuck
            .set(i64::try_from(stuck).unwrap_or(i64::MAX));
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
}

/// Counts the failure and retries: soon after a conflict (the cache is about to show what changed),
/// later after anything else. Reporting on the object happened in the reconcile.
fn error_policy<K: Resource<DynamicType = ()>, F>(
    _object: Arc<K>,
    error: &Error,
    ctx: Arc<Context<F>>,
) -> Action {
    ctx.metrics.failure(&K::kind(&()), error.metric_label());
    Action::requeue(retry_after(error))
}

fn retry_after(error: &Error) -> Duration {
    match error {
        Error::Conflict => Duration::from_millis(200),
        _ => Duration::from_secs(5),
    }
}
