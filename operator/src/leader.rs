//! Leader election on a Lease in the operator's namespace (kube-lease-manager), so several replicas
//! can run for availability while exactly one reconciles: two leaders would send every SSM command
//! twice.
//!
//! kube-lease-manager only says "lost" once it reads the Lease back held by someone else; while the
//! apiserver is out of reach it keeps saying "leader". So this replica also checks its own lease every
//! [`CHECK_EVERY`] and stops once it cannot show the lease is still its own with [`MARGIN`] to spare:
//! before a standby may take it over.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
// The operator's Role grants get/update/patch on exactly this name.
use passport_crds::common::OPERATOR_LEASE as LEASE_NAME;
use tokio::{sync::watch, task::JoinHandle};

/// A leader that stops renewing loses the lease after this long.
const LEASE_SECONDS: u64 = 30;
/// The leader renews this long before the lease would lapse.
const GRACE_SECONDS: u64 = 20;
/// How often the leader reads its own lease back.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long one read of the lease may take.
const READ_WITHIN: Duration = Duration::from_secs(2);
/// The leader stops this long before its lease would lapse, unless it has seen it renewed.
const MARGIN: SignedDuration = SignedDuration::from_secs(3);

type Watcher = JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>;

#[derive(Debug)]
pub struct Leadership {
    state: watch::Receiver<bool>,
    watcher: Watcher,
    leases: Api<Lease>,
    identity: String,
    /// When this replica started competing.
    started_at: Timestamp,
    /// No later than the lease write that made this replica leader.
    leading_since: Option<Timestamp>,
}

impl Leadership {
    /// Starts competing for the lease as `identity` (the pod name, or anything unique).
    pub async fn start(client: Client, namespace: &str, identity: &str) -> Result<Self, LeaseManagerError> {
        let leases = Api::namespaced(client.clone(), namespace);
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .build()
            .await?;
        let started_at = Timestamp::now();
        let (state, watcher) = manager.watch().await;
        Ok(Self {
            state,
            watcher,
            leases,
            identity: identity.to_owned(),
            started_at,
            leading_since: None,
        })
    }

    /// Resolves once this replica leads (or never, if the election stopped).
    pub async fn acquired(&mut self) {
        // The lease write that makes this replica leader comes after it was last seen a standby (or,
        // leading already, after it started competing).
        let since = if *self.state.borrow() {
            self.started_at
        } else {
            Timestamp::now()
        };
        if self.state.wait_for(|leader| *leader).await.is_err() {
            std::future::pending::<()>().await;
        }
        self.leading_since = Some(since);
    }

    /// Resolves if this replica stops leading, or can no longer show that it still does.
    pub async fn lost(&mut self) {
        let (leases, identity) = (self.leases.clone(), self.identity.clone());
        // The lease it just won lasts at least this long: a loaded apiserver that is slow to answer
        // the first reads back does not stop a new leader (with a backlog to clear) at once.
        let won_until = self
            .leading_since
            .map(|since| since + SignedDuration::from_secs(LEASE_SECONDS as i64));
        tokio::select! {
            _ = self.state.wait_for(|leader| !*leader) => {}
            why = unconfirmed(&leases, &identity, won_until) => tracing::warn!("stopping: {why}"),
        }
    }

    /// Gives the lease up, so a standby takes over at once instead of after it lapses.
    pub async fn release(self) {
        drop(self.state);
        if tokio::time::timeout(Duration::from_secs(5), self.watcher)
            .await
            .is_err()
        {
            tracing::warn!("could not release the leader lease in time; it lapses in {LEASE_SECONDS}s");
        }
    }
}

/// Reads the lease back until it is no longer provably this replica's; says why.
async fn unconfirmed(leases: &Api<Lease>, identity: &str, won_until: Option<Timestamp>) -> String {
    let mut held_until = won_until;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        // A read that hangs (a partition that drops packets) is a read that failed.
        let seen = match tokio::time::timeout(READ_WITHIN, leases.get_opt(LEASE_NAME)).await {
            Ok(Ok(lease)) => Seen::Lease(lease.as_ref().and_then(holding)),
            Ok(Err(err)) => Seen::Unreadable(err.to_string()),
            Err(_) => Seen::Unreadable(format!("no answer within {READ_WITHIN:?}")),
        };
        match check(seen, identity, held_until, Timestamp::now()) {
            Ok(until) => held_until = Some(until),
            Err(why) => return why,
        }
    }
}

/// What a read of the lease showed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Who holds it and until when (`None`: nobody, or no lease at all).
    Lease(Option<(String, Timestamp)>),
    Unreadable(String),
}

fn holding(lease: &Lease) -> Option<(String, Timestamp)> {
    let spec = lease.spec.as_ref()?;
    let renewed = spec.renew_time.as_ref()?.0;
    let seconds = i64::from(spec.lease_duration_seconds?);
    Some((
        spec.holder_identity.clone()?,
        renewed + SignedDuration::from_secs(seconds),
    ))
}

/// Until when this replica may go on acting, or why it must stop now.
fn check(
    seen: Seen,
    identity: &str,
    held_until: Option<Timestamp>,
    now: Timestamp,
) -> Result<Timestamp, String> {
    let until = match seen {
        Seen::Lease(Some((holder, until))) if holder == identity => until,
        Seen::Lease(Some((holder, _))) => return Err(format!("the leader lease is held by {holder}")),
        Seen::Lease(None) => return Err("the leader lease is gone".into()),
        Seen::Unreadable(err) => held_until.ok_or_else(|| format!("cannot read the leader lease: {err}"))?,
    };
    if now + MARGIN >= until {
        return Err(format!(
            "the leader lease was not renewed in time (it lapses at {until})"
        ));
    }
    Ok(until)
}

/// This replica's identity in the election: the pod name when Kubernetes gives it one.
pub fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("valid")
    }

    fn held_by(holder: &str, until: i64) -> Seen {
        Seen::Lease(Some((holder.into(), at(until))))
    }

    #[test]
    fn a_renewed_lease_of_ones_own_keeps_leading() {
        assert_eq!(check(held_by("me", 15), "me", None, at(0)), Ok(at(15)));
    }

    #[test]
    fn another_holder_or_no_lease_stops_at_once() {
        assert!(check(held_by("other", 15), "me", Some(at(15)), at(0)).is_err());
        assert!(check(Seen::Lease(None), "me", Some(at(15)), at(0)).is_err());
    }

    #[test]
    fn an_unreadable_lease_is_trusted_only_until_shortly_before_it_lapses() {
        let unreadable = || Seen::Unreadable("connection refused".into());
        assert_eq!(check(unreadable(), "me", Some(at(15)), at(11)), Ok(at(15)));
        let late = check(unreadable(), "me", Some(at(15)), at(12)).expect_err("too close to lapsing");
        assert!(late.contains("not renewed in time"), "{late}");
        assert!(check(unreadable(), "me", None, at(0)).is_err());
    }

    #[test]
    fn a_lease_not_renewed_stops_before_a_standby_may_take_it() {
        assert!(check(held_by("me", 15), "me", None, at(13)).is_err());
    }
}
