//! How often one AccessRequest gets new credentials. CredentialRequests are cheap to create, and each
//! new issue costs signatures and an AssumeRole, so per AccessRequest (keyed by its UID):
//!
//! 1. **reuse**: a certificate already issued for the same public key and key type, to the same user
//!    and targets, with more than [`REUSE_MARGIN`] left (and its AWS session too), is given again: no
//!    signature, no AssumeRole, no logbook entry (the first issue has one);
//! 2. **token bucket**: otherwise at most [`Limits::per_minute`] new issues a minute, in bursts of
//!    [`Limits::burst`];
//! 3. **a short line**: a CredentialRequest that finds the bucket empty waits its turn (first come,
//!    first served) when its turn comes within [`Limits::max_wait`], which the CLI waits for; the
//!    rest are refused at once, saying when to retry. So a runaway script costs a few signatures a
//!    minute and a refusal each, however many objects it creates.
//!
//! A [`Ledger`] is the state of one AccessRequest, kept in the operator's memory: a restart forgets
//! it, which at worst allows one more burst.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use passport_crds::KeyType;

use super::{
    SessionCredentials,
    decide::{Plan, Reason, Refusal},
};
use crate::ssh_ca::IssuedCert;

/// A certificate (and AWS session) with less than this left is not given again: the user needs
/// time to log in with it.
pub const REUSE_MARGIN: Duration = Duration::from_secs(60);
/// At most this many certificates are remembered per AccessRequest (the ones ending last are kept).
pub const MAX_REMEMBERED: usize = 32;
/// A waiter not seen this long after its turn came is taken to be gone (its CredentialRequest was
/// deleted), and loses its place.
pub const WAITER_GRACE: Duration = Duration::from_secs(30);

/// The limits per AccessRequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// New issues a minute, sustained.
    pub per_minute: u32,
    /// New issues at once, after a quiet spell.
    pub burst: u32,
    /// The longest a CredentialRequest waits for its turn; past that it is refused at once.
    pub max_wait: Duration,
}

/// 6 a minute, bursts of 10, a wait of at most two minutes (the CLI waits 150 s for an issue).
pub const LIMITS: Limits = Limits {
    per_minute: 6,
    burst: 10,
    max_wait: Duration::from_secs(120),
};

impl Limits {
    fn per_second(&self) -> f64 {
        f64::from(self.per_minute.max(1)) / 60.0
    }

    /// The words every rate-limit message starts with.
    pub fn describe(&self) -> String {
        format!(
            "rate limited: at most {} new certificates per minute per AccessRequest (bursts of {})",
            self.per_minute, self.burst
        )
    }
}

/// A certificate issued, kept to be given again.
#[derive(Debug, Clone)]
pub struct Remembered {
    /// The certified key without its comment.
    pub public_key: String,
    pub key_type: KeyType,
    pub username: String,
    pub instance_ids: Vec<String>,
    pub certificates: Vec<IssuedCert>,
    pub session: SessionCredentials,
    pub serial: u64,
    /// `namespace/name` of the CredentialRequest it was issued for.
    pub issued_for: String,
    /// When the first of the certificates and the AWS session ends.
    pub valid_until: Timestamp,
}

impl Remembered {
    pub fn new(
        plan: &Plan,
        certificates: Vec<IssuedCert>,
        session: SessionCredentials,
        issued_for: String,
    ) -> Self {
        let certificate_end = certificates
            .iter()
            .map(|c| c.valid_before)
            .min()
            .unwrap_or(plan.expires_at);
        let valid_until = certificate_end.min(session.expiration).min(plan.expires_at);
        Self {
            public_key: plan.public_key.clone(),
            key_type: plan.key_type,
            username: plan.username.clone(),
            instance_ids: plan.instance_ids.clone(),
            certificates,
            session,
            serial: plan.serial,
            issued_for,
            valid_until,
        }
    }

    /// The earliest end of validity of the certificates: the status's `validBefore`.
    pub fn valid_before(&self) -> Timestamp {
        self.certificates
            .iter()
            .map(|c| c.valid_before)
            .min()
            .unwrap_or(self.valid_until)
    }

    /// Whether it answers `plan` as a fresh issue would, with more than [`REUSE_MARGIN`] left.
    pub fn fits(&self, plan: &Plan, now: Timestamp) -> bool {
        self.public_key == plan.public_key
            && self.key_type == plan.key_type
            && self.username == plan.username
            && self.instance_ids == plan.instance_ids
            && self.valid_until <= plan.expires_at
            && self.valid_until > now + margin(REUSE_MARGIN)
    }
}

/// What to do with a CredentialRequest whose plan passed every check.
#[derive(Debug, Clone)]
pub enum Admission {
    /// Give this certificate again.
    Reuse(Box<Remembered>),
    /// Issue a new one: a token was taken.
    Issue,
    /// Its turn comes at `until`: say so (`Issued=Unknown`) and look again then.
    Wait { until: Timestamp, message: String },
    /// Its turn is too far off: refuse, saying when to retry.
    Refuse(Refusal),
}

#[derive(Debug, Clone)]
struct Waiter {
    id: String,
    since: Timestamp,
    due: Timestamp,
}

/// The issuing state of one AccessRequest.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Tokens as of `refilled`; `None` before the first look: a full bucket.
    tokens: Option<(f64, Timestamp)>,
    remembered: Vec<Remembered>,
    waiting: Vec<Waiter>,
}

impl Ledger {
    /// Decides for the CredentialRequest `id` (its UID) with `plan`, at `now`; `ar` is the
    /// AccessRequest's name, for the messages.
    pub fn admit(&mut self, limits: &Limits, plan: &Plan, id: &str, ar: &str, now: Timestamp) -> Admission {
        self.prune(now);
        if let Some(found) = self.remembered.iter().find(|r| r.fits(plan, now)) {
            let found = found.clone();
            self.waiting.retain(|w| w.id != id);
            return Admission::Reuse(Box::new(found));
        }
        let tokens = self.refill(limits, now);
        let place = self.waiting.iter().position(|w| w.id == id);
        let ahead = place.unwrap_or(self.waiting.len());
        // Tokens needed: one for each waiter ahead, and one for this one.
        let needed = (ahead + 1) as f64;
        if tokens >= needed {
            self.tokens = Some((tokens - 1.0, now));
            if let Some(place) = place {
                self.waiting.remove(place);
            }
            return Admission::Issue;
        }
        // Stable across looks: the exact moment the token comes, up to the next whole second.
        let seconds = (needed - tokens) / limits.per_second();
        let exact = now + SignedDuration::from_secs_f64(seconds.max(0.0));
        let whole = Timestamp::from_second(exact.as_second()).unwrap_or(exact);
        let due = if whole < exact {
            whole + SignedDuration::from_secs(1)
        } else {
            whole
        };
        let waited_too_long =
            place.is_some_and(|p| now.duration_since(self.waiting[p].since) > margin(limits.max_wait) * 2);
        if waited_too_long || (place.is_none() && due > now + margin(limits.max_wait)) {
            if let Some(place) = place {
                self.waiting.remove(place);
            }
            let message = format!(
                "{}, and {} CredentialRequest(s) of AccessRequest {ar} already wait for their turn; retry \
                 after {due} with a new CredentialRequest (the CLI keeps using a certificate it has \
                 until it is about to expire)",
                limits.describe(),
                self.waiting.len(),
            );
            return Admission::Refuse(Refusal {
                reason: Reason::RateLimited,
                message,
            });
        }
        match place {
            Some(place) => self.waiting[place].due = due,
            None => self.waiting.push(Waiter {
                id: id.to_owned(),
                since: now,
                due,
            }),
        }
        let message = format!(
            "{}; retry after {due}: this CredentialRequest waits its turn ({ahead} ahead of it), and the \
             operator retries it then",
            limits.describe()
        );
        Admission::Wait { until: due, message }
    }

    /// Keeps a newly issued certificate to give again.
    pub fn remember(&mut self, issued: Remembered, now: Timestamp) {
        self.prune(now);
        self.remembered.push(issued);
        if self.remembered.len() > MAX_REMEMBERED {
            self.remembered.sort_by_key(|r| std::cmp::Reverse(r.valid_until));
            self.remembered.truncate(MAX_REMEMBERED);
        }
    }

    /// Whether forgetting this ledger changes nothing: a full bucket, nothing to reuse, nobody
    /// waiting.
    pub fn idle(&mut self, limits: &Limits, now: Timestamp) -> bool {
        self.prune(now);
        self.remembered.is_empty()
            && self.waiting.is_empty()
            && self.refill(limits, now) >= f64::from(limits.burst)
    }

    /// How many wait for their turn.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn refill(&mut self, limits: &Limits, now: Timestamp) -> f64 {
        let burst = f64::from(limits.burst.max(1));
        let tokens = match self.tokens {
            None => burst,
            Some((tokens, at)) => {
                let seconds = now.duration_since(at).as_secs_f64().max(0.0);
                (tokens + seconds * limits.per_second()).min(burst)
            }
        };
        self.tokens = Some((tokens, now));
        tokens
    }

    fn prune(&mut self, now: Timestamp) {
        self.remembered
            .retain(|r| r.valid_until > now + margin(REUSE_MARGIN));
        self.waiting.retain(|w| w.due + margin(WAITER_GRACE) > now);
    }
}

fn margin(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests;
