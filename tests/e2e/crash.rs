//! Access always ends, even when the operator is killed anywhere: dozens of lifecycles over several
//! instances and requesters while the real operator binary is SIGKILLed at random moments, and
//! deterministically right after each status write and each SSM command of whole lifecycles. At the
//! end every request is final, no passport user or principals file is left on any instance, no user
//! was ever provisioned for a request nobody approved, and no target got more provisioning commands
//! than the attempts its status recorded.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use passport_crds::{AccessRequest, Phase};
use passport_tests::{
    ControlPlane, aws::AwsEmulator, controlplane, fixtures, instance::Instance, operator::OperatorProcess,
    requests, wait::eventually,
};

use crate::{
    E2e,
    scenario::{Scenario, online_instance},
    test,
};

/// The operator's leader-election identity across restarts: a restarted replica takes its own lease
/// back at once instead of waiting for it to lapse (as a StatefulSet pod keeps its name).
const POD_NAME: &str = "passport-operator-0";
const LIFECYCLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Random kills: at most this many, this often.
const RANDOM_KILLS: u32 = 30;
const KILL_EVERY_MS: (u64, u64) = (2_500, 6_000);
/// Slots of the random phase (an overlap slot is two lifecycles, so more lifecycles than slots).
const SLOTS: usize = 56;
const STAGGER: Duration = Duration::from_millis(1_300);

pub fn trials() -> Vec<E2e> {
    vec![test(
        "crash::operator_killed_anywhere_access_still_ends",
        |_env| async move { crash_suite().await },
    )]
}

/// The real operator, killed and restarted on demand.
pub struct Restartable<'a> {
    plane: &'a ControlPlane,
    env: Vec<(&'static str, String)>,
    /// The first process; scenarios borrow it for their setup.
    initial: OperatorProcess,
    later: Mutex<Option<OperatorProcess>>,
    /// Holds the running process's pid, for the emulator's kill hook.
    pid_file: tempfile::NamedTempFile,
    pub restarts: AtomicU32,
    last_restart: Mutex<Option<Instant>>,
}

impl<'a> Restartable<'a> {
    fn start(plane: &'a ControlPlane, emulator: &AwsEmulator) -> Result<Self> {
        let mut env = emulator.env_vars();
        env.push(("POD_NAME", POD_NAME.to_owned()));
        let initial = OperatorProcess::start(plane, &env)?;
        let pid_file = tempfile::Builder::new()
            .prefix("passport-operator-pid-")
            .tempfile()?;
        std::fs::write(pid_file.path(), initial.pid().unwrap_or_default().to_string())?;
        Ok(Self {
            initial,
            plane,
            env,
            later: Mutex::new(None),
            pid_file,
            restarts: AtomicU32::new(0),
            last_restart: Mutex::new(None),
        })
    }

    fn later(&self) -> std::sync::MutexGuard<'_, Option<OperatorProcess>> {
        self.later.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// SIGKILLs the running process (if it still runs) and starts a new one.
    pub fn crash_and_restart(&self) -> Result<()> {
        self.initial.kill();
        let mut later = self.later();
        if let Some(old) = later.take() {
            old.kill();
        }
        let process = OperatorProcess::start(self.plane, &self.env)?;
        std::fs::write(
            self.pid_file.path(),
            process.pid().unwrap_or_default().to_string(),
        )?;
        *later = Some(process);
        self.restarts.fetch_add(1, Ordering::Relaxed);
        *self
            .last_restart
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let tail = match self.later().as_ref() {
            Some(process) => process.log_tail(),
            None => self.initial.log_tail(),
        };
        format!("--- operator log ---\n{tail}")
    }

    fn last_restart(&self) -> Option<Instant> {
        *self
            .last_restart
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A control plane, an emulator and a restartable operator of the test's own.
pub struct CrashStack {
    pub emulator: AwsEmulator,
    pub plane: &'static ControlPlane,
    pub operator: Restartable<'static>,
}

impl CrashStack {
    pub async fn start() -> Result<Self> {
        let emulator = AwsEmulator::start().await?;
        // Leaked: the stack lives as long as the trial, and the operator borrows it for restarts.
        let plane: &'static ControlPlane = Box::leak(Box::new(controlplane::start_with_crds().await?));
        let operator = Restartable::start(plane, &emulator)?;
        Ok(Self {
            emulator,
            plane,
            operator,
        })
    }

    /// A namespace with an AwsAccount and a policy auto-approving `requesters` on `instance_ids`.
    pub async fn scenario(
        &self,
        namespace: &str,
        requesters: &[&str],
        instance_ids: &[&str],
    ) -> Result<Scenario<'_>> {
        Scenario::new(
            self.plane,
            &self.emulator,
            &self.operator.initial,
            namespace.to_owned(),
            requesters,
            instance_ids,
        )
        .await
    }

    pub async fn wait_phase(
        &self,
        s: &Scenario<'_>,
        name: &str,
        phase: Phase,
        timeout: Duration,
    ) -> Result<AccessRequest> {
        requests::wait_phase(&s.requests, name, phase, timeout, || self.operator.log_tail()).await
    }

    /// Arms the emulator to SIGKILL the operator running then right after the `nth` SendCommand from
    /// now whose comment contains `comment`.
    pub async fn kill_after_send(&self, nth: u32, comment: &str) -> Result<u64> {
        self.emulator
            .kill_after_send(self.operator.pid_file.path(), nth, comment)
            .await
    }

    /// Waits until the hook fired, then restarts the operator; returns the command that fired it.
    pub async fn restart_when_fired(&self, hook: u64) -> Result<String> {
        let command = eventually(Duration::from_secs(120), || async {
            self.emulator
                .kill_hook_fired(hook)
                .await?
                .context("the armed SendCommand has not come yet")
        })
        .await
        .with_context(|| self.operator.log_tail())?;
        self.operator.crash_and_restart()?;
        Ok(command)
    }
}

impl Drop for CrashStack {
    fn drop(&mut self) {
        self.operator.initial.kill();
        if let Some(process) = self.operator.later().take() {
            process.kill();
        }
        self.plane.stop();
    }
}

/// Fails unless the instance has no passport user (`rs-*`) and no principals file.
pub async fn no_passport_user_left(instance: &Instance) -> Result<()> {
    let passwd = instance.exec(&["getent", "passwd"]).await?.ok()?.stdout;
    let users: Vec<&str> = passwd
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|name| name.starts_with("rs-"))
        .collect();
    ensure!(
        users.is_empty(),
        "{}: passport users left: {users:?}",
        instance.id()
    );
    let principals = instance
        .exec(&[
            "sh",
            "-c",
            "ls -A /etc/ssh/passport/principals/ 2>/dev/null || true",
        ])
        .await?
        .ok()?
        .stdout;
    ensure!(
        principals.trim().is_empty(),
        "{}: principals files left: {principals}",
        instance.id()
    );
    Ok(())
}

/// How many provisioning commands the emulator recorded for request `uid` on `instance_id`.
pub async fn provisioning_commands(emulator: &AwsEmulator, uid: &str, instance_id: &str) -> Result<usize> {
    Ok(emulator
        .commands()
        .await?
        .iter()
        .filter(|c| {
            c.is_provisioning()
                && c.instance_ids.iter().any(|i| i == instance_id)
                && c.assignment("PASSPORT_HOLDER").as_deref() == Some(uid)
        })
        .count())
}

/// What a watch of every AccessRequest saw: per request UID its name, the highest `attempts` of
/// each target, and its last phase.
#[derive(Debug, Default)]
struct Seen {
    names: BTreeMap<String, String>,
    attempts: BTreeMap<(String, String), u32>,
    phases: BTreeMap<String, Phase>,
}

fn track(api: Api<AccessRequest>) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).touched_objects());
            while let Some(event) = events.next().await {
                let Ok(request) = event else { continue };
                let Some(uid) = request.metadata.uid.clone() else {
                    continue;
                };
                let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                seen.names
                    .insert(uid.clone(), request.metadata.name.clone().unwrap_or_default());
                if let Some(status) = &request.status {
                    seen.phases.insert(uid.clone(), status.phase);
                    for target in &status.targets {
                        let slot = seen
                            .attempts
                            .entry((uid.clone(), target.instance_id.clone()))
                            .or_default();
                        *slot = (*slot).max(target.attempts);
                    }
                }
            }
        })
    };
    (seen, task)
}

/// A small deterministic generator (xorshift), seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Complete,
    Expire,
    Delete,
    Extend,
    Overlap,
    Unapproved,
}

#[derive(Debug, Default)]
struct Tally {
    lifecycles: BTreeMap<String, u32>,
    outcomes: BTreeMap<String, u32>,
    unapproved: BTreeSet<(String, String)>,
}

impl Tally {
    fn add(&mut self, kind: &str, outcome: &str) {
        *self.lifecycles.entry(kind.to_owned()).or_default() += 1;
        *self.outcomes.entry(outcome.to_owned()).or_default() += 1;
    }
}

async fn crash_suite() -> Result<()> {
    let started = Instant::now();
    let stack = CrashStack::start().await?;
    let emulator = &stack.emulator;
    let instances = futures::future::try_join_all((0..4).map(|_| online_instance(emulator))).await?;
    let ids: Vec<&str> = instances.iter().map(Instance::id).collect();
    let requesters = ["alice", "bob", "carol", "dave", "erin"];
    let s = stack.scenario("crash", &requesters, &ids).await?;
    let (seen, tracker) = track(s.requests.clone());
    let tally = Mutex::new(Tally::default());

    // Three kinds of kill, all at once (each lifecycle's own kills are still exactly where they
    // are meant to be; the others only add crashes around them):
    // 1. Deterministic: a lifecycle killed after each odd status write, the same lifecycle again
    //    killed after each even one: between them every write of the lifecycle is followed by a kill.
    //    (Killed after every write, a lifecycle never confirms a send and fails after its third
    //    attempt, by design.)
    // 2. Deterministic: a lifecycle killed right after its first SSM call (the provisioning send),
    //    another right after its second (the revoke), by the emulator before it answers.
    // 3. Random: many lifecycles while the operator is killed every few seconds.
    let writes = AtomicU32::new(0);
    let deterministic = async {
        let status_kills = [1, 0].map(|parity| {
            let (stack, s, tally, writes, instance) = (&stack, &s, &tally, &writes, ids[0]);
            async move {
                let name = format!("statuskill-{parity}");
                let (killed, phase) = killed_after_status_writes(stack, s, instance, &name, parity).await?;
                writes.fetch_add(killed, Ordering::Relaxed);
                tally
                    .lock()
                    .map_err(poisoned)?
                    .add("status-write kills", &format!("{phase:?}"));
                anyhow::Ok(())
            }
        });
        let send_kills = [(1, "sendkill-1"), (2, "sendkill-2")].map(|(call, name)| {
            let (stack, s, tally, instance) = (&stack, &s, &tally, ids[1]);
            async move {
                let phase = killed_after_nth_send(stack, s, instance, name, call).await?;
                tally
                    .lock()
                    .map_err(poisoned)?
                    .add("ssm-call kills", &format!("{phase:?}"));
                anyhow::Ok(())
            }
        });
        let [a, b] = status_kills;
        let [c, d] = send_kills;
        tokio::try_join!(a, b, c, d).map(drop)
    };

    let seed = jiff::Timestamp::now().as_nanosecond() as u64 | 1;
    eprintln!("crash: seed {seed}");
    let mut rng = Rng(seed);
    let stop = AtomicBool::new(false);
    let random_kills = AtomicU32::new(0);
    let killer = async {
        let mut rng = Rng(seed.rotate_left(17) | 1);
        while !stop.load(Ordering::Relaxed) && random_kills.load(Ordering::Relaxed) < RANDOM_KILLS {
            tokio::time::sleep(Duration::from_millis(
                rng.between(KILL_EVERY_MS.0, KILL_EVERY_MS.1),
            ))
            .await;
            if stop.load(Ordering::Relaxed) {
                break;
            }
            stack.operator.crash_and_restart()?;
            random_kills.fetch_add(1, Ordering::Relaxed);
        }
        anyhow::Ok(())
    };
    let slots: Vec<_> = (0..SLOTS)
        .map(|i| {
            let kind = match i % 8 {
                0 | 5 => Kind::Complete,
                1 | 6 => Kind::Expire,
                2 => Kind::Delete,
                3 => Kind::Extend,
                4 => Kind::Overlap,
                _ => Kind::Unapproved,
            };
            let requester = requesters[i % requesters.len()];
            let first = (i * 3 + i / 4) % ids.len();
            let mut targets = vec![ids[first]];
            if i % 7 == 0 {
                targets.push(ids[(first + 1) % ids.len()]);
            }
            let hold = Duration::from_millis(rng.between(0, 4_000));
            (i, kind, requester, targets, hold)
        })
        .collect();
    let lifecycles = async {
        let runs = slots.iter().map(|(i, kind, requester, targets, hold)| {
            let (s, tally, stack) = (&s, &tally, &stack);
            async move {
                tokio::time::sleep(STAGGER * *i as u32).await;
                let name = format!("l{i:02}-{kind:?}").to_lowercase();
                lifecycle(s, &stack.operator, tally, &name, *kind, requester, targets, *hold)
                    .await
                    .with_context(|| format!("lifecycle {name} ({kind:?}, {requester}, {targets:?})"))
            }
        });
        let outcome = futures::future::try_join_all(runs);
        let outcome = tokio::try_join!(outcome, deterministic).map(drop);
        stop.store(true, Ordering::Relaxed);
        outcome
    };
    let (outcome, killed) = tokio::join!(lifecycles, killer);
    killed?;
    outcome.with_context(|| stack.operator.log_tail())?;
    let last_restart = stack.operator.last_restart();

    // Convergence: every instance clean.
    for instance in &instances {
        eventually(LIFECYCLE_TIMEOUT, || no_passport_user_left(instance))
            .await
            .with_context(|| stack.operator.log_tail())?;
    }
    let converged = last_restart.map(|t| t.elapsed()).unwrap_or_default();

    // Invariants.
    let mut invariants = Vec::new();
    let left = s.requests.list(&Default::default()).await?;
    for request in &left.items {
        let phase = request.status.as_ref().map(|st| st.phase);
        ensure!(
            phase.is_some_and(Phase::is_terminal),
            "{:?} is not final: {phase:?}",
            request.metadata.name
        );
    }
    invariants.push(format!(
        "{} requests left, all final; the rest gone after deletion",
        left.items.len()
    ));
    invariants.push(format!(
        "{} instances without rs-* users or principals files",
        instances.len()
    ));

    let tally = tally.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let commands = emulator.commands().await?;
    let grants: Vec<_> = commands.iter().filter(|c| c.is_provisioning()).collect();
    for command in &grants {
        let holder = command.assignment("PASSPORT_HOLDER").unwrap_or_default();
        let request = command.assignment("PASSPORT_REQUEST").unwrap_or_default();
        for (uid, name) in &tally.unapproved {
            ensure!(
                holder != *uid && request != format!("{}/{name}", s.namespace),
                "provisioning command {} for unapproved request {name}",
                command.command_id
            );
        }
    }
    invariants.push(format!(
        "no provisioning command among {} for the {} unapproved requests",
        grants.len(),
        tally.unapproved.len()
    ));

    tokio::time::sleep(Duration::from_millis(500)).await; // the tracker's last events
    tracker.abort();
    let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut sent: BTreeMap<(String, String), u32> = BTreeMap::new();
    for command in &grants {
        let holder = command.assignment("PASSPORT_HOLDER").unwrap_or_default();
        for instance in &command.instance_ids {
            *sent.entry((holder.clone(), instance.clone())).or_default() += 1;
        }
    }
    let mut retried = 0;
    for ((uid, instance), count) in &sent {
        let attempts = seen
            .attempts
            .get(&(uid.clone(), instance.clone()))
            .copied()
            .unwrap_or(0);
        let name = seen.names.get(uid).cloned().unwrap_or_default();
        ensure!(
            *count <= attempts,
            "{name} ({uid}) on {instance}: {count} provisioning commands, {attempts} attempts recorded"
        );
        retried += u32::from(*count > 1);
    }
    invariants.push(format!(
        "provisioning commands ≤ recorded attempts on all {} (request, instance) pairs ({retried} resent after a crash)",
        sent.len()
    ));

    let lifecycle_count: u32 = tally.lifecycles.values().sum();
    ensure!(lifecycle_count >= 60, "only {lifecycle_count} lifecycles");
    eprintln!(
        "crash: {} kills ({} right after a status write, 2 right after an SSM call, {} random); {lifecycle_count} \
         lifecycles {:?} over {} instances, {} approved requesters (+{} never approved); outcomes {:?}",
        stack.operator.restarts.load(Ordering::Relaxed),
        writes.load(Ordering::Relaxed),
        random_kills.load(Ordering::Relaxed),
        tally.lifecycles,
        instances.len(),
        requesters.len(),
        tally.unapproved.len(),
        tally.outcomes
    );
    for invariant in &invariants {
        eprintln!("crash: invariant held: {invariant}");
    }
    eprintln!(
        "crash: converged {converged:?} after the last restart; {} SendCommands; wall time {:?}",
        commands.len(),
        started.elapsed()
    );
    Ok(())
}

fn poisoned<T>(_: T) -> anyhow::Error {
    anyhow::anyhow!("a lock was poisoned")
}

/// One lifecycle of the random phase. Records its kind and outcome in `tally`.
#[allow(clippy::too_many_arguments)]
async fn lifecycle(
    s: &Scenario<'_>,
    operator: &Restartable<'_>,
    tally: &Mutex<Tally>,
    name: &str,
    kind: Kind,
    requester: &str,
    targets: &[&str],
    hold: Duration,
) -> Result<()> {
    let context = || operator.log_tail();
    let record = |kind: &str, outcome: &str| -> Result<()> {
        tally.lock().map_err(poisoned)?.add(kind, outcome);
        Ok(())
    };
    let create = |name: String, requester: String, duration: &'static str| {
        let request = fixtures::request(&name)
            .namespace(&s.namespace)
            .requester(&requester)
            .reason("crash suite")
            .duration(duration)
            .account(&s.account)
            .targets(targets.iter().copied())
            .build();
        async move {
            eventually(Duration::from_secs(30), || async {
                match s.requests.create(&PostParams::default(), &request).await {
                    Ok(created) => Ok(created),
                    // Created by an earlier try whose answer was lost.
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(s.requests.get(&name).await?),
                    Err(err) => Err(err.into()),
                }
            })
            .await
        }
    };
    let settled = |r: &AccessRequest| {
        r.status
            .as_ref()
            .is_some_and(|st| st.phase == Phase::Active || st.phase.is_terminal())
    };
    let phase_of = |r: &AccessRequest| r.status.as_ref().map(|st| st.phase).unwrap_or_default();
    let end = |name: String, phase: Phase| async move {
        let done = requests::wait_for(
            &s.requests,
            &name,
            "final",
            LIFECYCLE_TIMEOUT,
            |r| r.status.as_ref().is_some_and(|st| st.phase.is_terminal()),
            context,
        )
        .await?;
        let got = phase_of(&done);
        ensure!(
            got == phase || got == Phase::Failed,
            "{name} ended {got:?}, expected {phase:?}: {:?}",
            done.status
        );
        if got == Phase::Failed {
            eprintln!(
                "crash: {name} Failed: {:?}",
                done.status.as_ref().map(|st| &st.message)
            );
        }
        Ok::<_, anyhow::Error>(got)
    };
    let patch = |name: String, patch: serde_json::Value| async move {
        eventually(Duration::from_secs(30), || async {
            s.requests
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(anyhow::Error::from)
        })
        .await
    };
    let complete = |name: String| patch(name, serde_json::json!({ "spec": { "completed": true } }));

    match kind {
        Kind::Unapproved => {
            let created = create(name.to_owned(), format!("mallory-{name}"), "1h").await?;
            let uid = created.metadata.uid.clone().context("no uid")?;
            tally
                .lock()
                .map_err(poisoned)?
                .unapproved
                .insert((uid, name.to_owned()));
            // Seen by the operator (it says it waits for approval), never approved.
            let pending = requests::wait_for(
                &s.requests,
                name,
                "looked at",
                LIFECYCLE_TIMEOUT,
                |r| r.status.is_some(),
                context,
            )
            .await?;
            ensure!(phase_of(&pending) == Phase::Pending, "{:?}", pending.status);
            tokio::time::sleep(Duration::from_secs(20) + hold).await;
            s.requests.delete(name, &DeleteParams::default()).await?;
            requests::wait_gone(&s.requests, name, LIFECYCLE_TIMEOUT, context).await?;
            record("unapproved", "deleted while Pending")
        }
        Kind::Expire => {
            create(name.to_owned(), requester.to_owned(), "1m").await?;
            let got = end(name.to_owned(), Phase::Expired).await?;
            record("expiry", &format!("{got:?}"))
        }
        Kind::Complete | Kind::Extend | Kind::Delete => {
            create(name.to_owned(), requester.to_owned(), "1h").await?;
            let active =
                requests::wait_for(&s.requests, name, "Active", LIFECYCLE_TIMEOUT, settled, context).await?;
            if phase_of(&active) != Phase::Active {
                let got = end(name.to_owned(), Phase::Failed).await?;
                return record(&format!("{kind:?}").to_lowercase(), &format!("{got:?}"));
            }
            tokio::time::sleep(hold).await;
            if kind == Kind::Extend {
                patch(
                    name.to_owned(),
                    serde_json::json!({ "spec": { "duration": "2h" } }),
                )
                .await?;
                requests::wait_for(
                    &s.requests,
                    name,
                    "extended",
                    LIFECYCLE_TIMEOUT,
                    |r| r.status.as_ref().and_then(|st| st.approved_duration.as_deref()) == Some("2h"),
                    context,
                )
                .await?;
            }
            if kind == Kind::Delete {
                eventually(Duration::from_secs(30), || async {
                    s.requests
                        .delete(name, &DeleteParams::default())
                        .await
                        .map(drop)
                        .map_err(anyhow::Error::from)
                })
                .await?;
                requests::wait_gone(&s.requests, name, LIFECYCLE_TIMEOUT, context).await?;
                return record("deletion", "gone");
            }
            complete(name.to_owned()).await?;
            let got = end(name.to_owned(), Phase::Completed).await?;
            record(&format!("{kind:?}").to_lowercase(), &format!("{got:?}"))
        }
        Kind::Overlap => {
            // Two requests of one requester on the same instances: the user outlives the first.
            let (a, b) = (format!("{name}-a"), format!("{name}-b"));
            create(a.clone(), requester.to_owned(), "1h").await?;
            create(b.clone(), requester.to_owned(), "1h").await?;
            let (ra, rb) = tokio::try_join!(
                requests::wait_for(&s.requests, &a, "Active", LIFECYCLE_TIMEOUT, settled, context),
                requests::wait_for(&s.requests, &b, "Active", LIFECYCLE_TIMEOUT, settled, context)
            )?;
            tokio::time::sleep(hold).await;
            if phase_of(&ra) == Phase::Active {
                complete(a.clone()).await?;
            }
            let got_a = end(a.clone(), Phase::Completed).await?;
            record("overlap", &format!("{got_a:?}"))?;
            if phase_of(&rb) == Phase::Active {
                complete(b.clone()).await?;
            }
            let got_b = end(b.clone(), Phase::Completed).await?;
            record("overlap", &format!("{got_b:?}"))
        }
    }
}

/// One lifecycle (request → Active → completed → Completed) on `instance_id`, the operator SIGKILLed
/// (and restarted) as soon as each new version of the request written by the operator (a status
/// write, the finalizer) whose index has the given parity arrives. Returns how many writes were
/// followed by a kill and the final phase.
async fn killed_after_status_writes(
    stack: &CrashStack,
    s: &Scenario<'_>,
    instance_id: &str,
    name: &str,
    parity: u32,
) -> Result<(u32, Phase)> {
    let request = fixtures::request(name)
        .namespace(&s.namespace)
        .requester("alice")
        .reason("killed after each status write")
        .duration("1h")
        .account(&s.account)
        .targets([instance_id])
        .build();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(s.requests.clone(), config).applied_objects());
    let created = s.requests.create(&PostParams::default(), &request).await?;
    let mut known: BTreeSet<String> = created.metadata.resource_version.into_iter().collect();
    let (mut writes, mut killed) = (0, 0);
    let mut completed = false;
    let deadline = Instant::now() + LIFECYCLE_TIMEOUT;
    loop {
        let next = tokio::time::timeout_at(deadline.into(), events.try_next()).await;
        let Ok(next) = next else {
            bail!(
                "{name} did not complete with kills after each write ({writes} so far)\n{}",
                stack.operator.log_tail()
            );
        };
        let Some(object) = next? else {
            bail!("the watch ended")
        };
        let Some(version) = object.metadata.resource_version.clone() else {
            continue;
        };
        if !known.insert(version) {
            continue;
        }
        let phase = object.status.as_ref().map(|st| st.phase);
        if let Some(phase) = phase.filter(|p| p.is_terminal()) {
            ensure!(
                phase == Phase::Completed || phase == Phase::Failed,
                "{name} ended {phase:?}"
            );
            eprintln!(
                "crash: {name}: {writes} writes, {killed} followed by a kill; ended {phase:?}: {:?}",
                object.status.as_ref().map(|st| &st.message)
            );
            return Ok((killed, phase));
        }
        writes += 1;
        if writes % 2 == parity {
            stack.operator.crash_and_restart()?;
            killed += 1;
        }
        if phase == Some(Phase::Active) && !completed {
            let patch = serde_json::json!({ "spec": { "completed": true } });
            let patched = s
                .requests
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            known.extend(patched.metadata.resource_version);
            completed = true;
        }
    }
}

/// One lifecycle (request → Active → completed → Completed) whose `nth` SSM call is followed at once
/// by a SIGKILL of the operator (from the emulator, before it answers). Returns its final phase.
async fn killed_after_nth_send(
    stack: &CrashStack,
    s: &Scenario<'_>,
    instance_id: &str,
    name: &str,
    nth: u32,
) -> Result<Phase> {
    // The comment is `passport <verb> <ns/name>`.
    let hook = stack
        .kill_after_send(nth, &format!("{}/{name}", s.namespace))
        .await?;
    let request = fixtures::request(name)
        .namespace(&s.namespace)
        .requester("bob")
        .reason("killed after an SSM call")
        .duration("1h")
        .account(&s.account)
        .targets([instance_id])
        .build();
    s.requests.create(&PostParams::default(), &request).await?;
    if nth == 1 {
        stack.restart_when_fired(hook).await?;
    }
    let context = || stack.operator.log_tail();
    let settled = |r: &AccessRequest| {
        r.status
            .as_ref()
            .is_some_and(|st| st.phase == Phase::Active || st.phase.is_terminal())
    };
    let active = requests::wait_for(&s.requests, name, "Active", LIFECYCLE_TIMEOUT, settled, context).await?;
    if active.status.as_ref().is_some_and(|st| st.phase == Phase::Active) {
        let patch = serde_json::json!({ "spec": { "completed": true } });
        s.requests
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    if nth > 1 {
        stack.restart_when_fired(hook).await?;
    }
    let done = requests::wait_for(
        &s.requests,
        name,
        "final",
        LIFECYCLE_TIMEOUT,
        |r| r.status.as_ref().is_some_and(|st| st.phase.is_terminal()),
        context,
    )
    .await?;
    let phase = done.status.as_ref().map(|st| st.phase).unwrap_or_default();
    ensure!(
        phase == Phase::Completed || phase == Phase::Failed,
        "{name} ended {phase:?}"
    );
    eprintln!("crash: {name}: killed right after its SSM call {nth}; ended {phase:?}");
    Ok(phase)
}
