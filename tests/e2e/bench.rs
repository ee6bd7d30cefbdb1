//! Lifecycle latency, measured on real parts; an ignored trial, run with `--ignored` (it takes
//! minutes and its numbers are reported, never asserted).
//!
//! 40 requests from 40 requesters (so 40 distinct OS users) to one instance, 20 applied one after
//! another and 20 at once:
//! time from `kubectl apply` to Active, and from status.expiresAt to the revoke command reaching SSM
//! (moto records each SendCommand's time).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use passport_crds::Phase;
use passport_tests::instance::Instance;

use crate::{
    E2e, benchmark,
    scenario::{Scenario, on_shared_stack, online_instance},
    test,
};

const REQUESTS: usize = 40;

pub fn trials() -> Vec<E2e> {
    vec![benchmark(test("lifecycle::bench_latency", |env| async move {
        let instance = online_instance(env.emulator().await?).await?;
        let users: Vec<String> = (0..REQUESTS).map(|i| format!("user{i:02}")).collect();
        let user_refs: Vec<&str> = users.iter().map(String::as_str).collect();
        let s = on_shared_stack(&env, "bench", &user_refs, &[instance.id()]).await?;
        measure(&s, &instance, &users).await
    }))]
}

async fn measure(s: &Scenario<'_>, instance: &Instance, users: &[String]) -> Result<()> {
    let (half, rest) = users.split_at(users.len() / 2);
    // One after another: the latency of a single request.
    let mut one_by_one = Vec::new();
    let mut expiries = Vec::new();
    for (i, user) in half.iter().enumerate() {
        let name = format!("seq{i:02}");
        let start = Instant::now();
        s.request(&name, user, "1m", &[instance.id()])?;
        let active = s
            .wait_phase(&name, Phase::Active, Duration::from_secs(120))
            .await?;
        one_by_one.push(start.elapsed());
        expiries.push((
            name,
            active
                .status
                .and_then(|st| st.expires_at)
                .context("no expiresAt")?
                .0,
        ));
    }
    // All at once: the same instance's SSM agent runs them one at a time, so these queue.
    let mut applied = Vec::new();
    for (i, user) in rest.iter().enumerate() {
        applied.push((format!("burst{i:02}"), Instant::now()));
        s.request(&format!("burst{i:02}"), user, "1m", &[instance.id()])?;
    }
    let mut burst = Vec::new();
    for (name, start) in &applied {
        let active = s
            .wait_phase(name, Phase::Active, Duration::from_secs(120))
            .await?;
        burst.push(start.elapsed());
        expiries.push((
            name.clone(),
            active
                .status
                .and_then(|st| st.expires_at)
                .context("no expiresAt")?
                .0,
        ));
    }
    for (name, _) in &expiries {
        s.wait_phase(name, Phase::Expired, Duration::from_secs(180))
            .await?;
    }
    let commands = s.emulator.commands().await?;
    let mut to_revoke = Vec::new();
    for (name, expires) in &expiries {
        let key = format!("{}/{name}", s.namespace);
        let sent = commands
            .iter()
            .find(|c| c.is_for("revoke", &key))
            .context("no revoke command recorded")?;
        let sent: jiff::Timestamp = sent.requested_date_time.parse()?;
        to_revoke.push(Duration::try_from(sent.duration_since(*expires)).unwrap_or_default());
    }
    report("kubectl apply → Active, one request at a time", &mut one_by_one);
    report("kubectl apply → Active, a burst to one instance", &mut burst);
    report("expiresAt → revoke command at SSM", &mut to_revoke);
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let median = samples[samples.len() / 2];
    let worst = samples[samples.len() - 1];
    eprintln!(
        "BENCH {what}: n={} median={median:?} worst={worst:?}",
        samples.len()
    );
}
