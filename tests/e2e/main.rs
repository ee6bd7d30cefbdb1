//! passport's end-to-end suite on real parts: a real kube-apiserver and etcd (the `local-controlplane`
//! harness), the real `kubectl`, and the real operator binary. One control plane serves the whole run;
//! each test works in its own namespace. It starts lazily, so filtering to no e2e test starts nothing.
//!
//! Benchmarks are ignored trials: they run with `--ignored` (or `--include-ignored`, or
//! `PASSPORT_BENCH=1`), e.g. `cargo test -p passport-tests --test e2e -- --ignored bench`.

mod admission;
mod approvals;
mod argocd_health;
mod aws;
mod bench;
mod bench_live;
mod bench_report;
mod bench_scale;
mod bench_seen;
mod chart;
mod chart_install;
mod cli;
mod cli_hostile;
mod crash;
mod credential_burst;
mod credentials;
mod env;
mod faults;
mod hostile_login;
mod instance;
mod judged;
mod lifecycle;
mod logbook_sink;
mod metrics;
mod namespace;
mod operator;
mod packaging;
mod policy_tags;
mod retention;
mod revocation;
mod scenario;
mod schema;
mod session_manager;
mod sha1_certs;
mod ssm_journey;
mod windows;

use std::{future::Future, sync::Arc};

use libtest_mimic::{Arguments, Failed, Trial};

pub use env::Env;

fn main() -> std::process::ExitCode {
    let mut args = Arguments::from_args();
    // The tests mostly wait (for expiry, SSM, sshd); two cores still run many of them side by side.
    args.test_threads.get_or_insert(6);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => Arc::new(runtime),
        Err(err) => {
            eprintln!("cannot start the tokio runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let env = Arc::new(Env::default());
    let benchmarks_asked = std::env::var("PASSPORT_BENCH").as_deref() == Ok("1");
    let mut trials = Vec::new();
    trials.extend(schema::trials());
    trials.extend(argocd_health::trials());
    trials.extend(chart::trials());
    trials.extend(chart_install::trials());
    trials.extend(packaging::trials());
    trials.extend(operator::trials());
    trials.extend(instance::trials());
    trials.extend(aws::trials());
    trials.extend(lifecycle::trials());
    trials.extend(logbook_sink::trials());
    trials.extend(retention::trials());
    trials.extend(admission::trials());
    trials.extend(bench::trials());
    trials.extend(bench_scale::trials());
    trials.extend(credentials::trials());
    trials.extend(credential_burst::trials());
    trials.extend(cli::trials());
    trials.extend(cli_hostile::trials());
    trials.extend(crash::trials());
    trials.extend(revocation::trials());
    trials.extend(namespace::trials());
    trials.extend(faults::trials());
    trials.extend(policy_tags::trials());
    trials.extend(judged::trials());
    trials.extend(approvals::trials());
    trials.extend(metrics::trials());
    trials.extend(hostile_login::trials());
    trials.extend(sha1_certs::trials());
    trials.extend(windows::trials());
    trials.extend(session_manager::trials());
    trials.extend(ssm_journey::trials());
    let trials = trials
        .into_iter()
        .map(|e2e| {
            let (env, runtime, run) = (env.clone(), runtime.clone(), e2e.run);
            Trial::test(e2e.name, move || {
                runtime
                    .block_on(run(env))
                    .map_err(|err| Failed::from(format!("{err:#}")))
            })
            .with_ignored_flag(e2e.benchmark && !benchmarks_asked)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    runtime.block_on(env.shutdown());
    conclusion.exit_code()
}

/// A test: an async function of the shared environment.
pub type TestFn =
    Box<dyn FnOnce(Arc<Env>) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send>;

/// One trial of the suite: its name says the rule it checks.
pub struct E2e {
    name: &'static str,
    run: TestFn,
    /// Measures instead of asserting; runs only when asked for.
    benchmark: bool,
}

/// A test that needs nothing of the shared environment (it starts what it checks).
pub fn alone<F, Fut>(name: &'static str, f: F) -> E2e
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    test(name, |_env| f())
}

impl std::fmt::Debug for E2e {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2e")
            .field("name", &self.name)
            .field("benchmark", &self.benchmark)
            .finish_non_exhaustive()
    }
}

/// A test: an async function of the shared environment that fails when the rule `name` is broken.
pub fn test<F, Fut>(name: &'static str, f: F) -> E2e
where
    F: FnOnce(Arc<Env>) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    E2e {
        name,
        run: Box::new(move |env| Box::pin(f(env))),
        benchmark: false,
    }
}

/// Makes `trial` a benchmark: it reports numbers and fails only when it cannot measure. Ignored
/// unless asked for (`--ignored`, `--include-ignored`, or `PASSPORT_BENCH=1`), so a benchmark that
/// did not run never shows as a passing test.
pub fn benchmark(trial: E2e) -> E2e {
    E2e {
        benchmark: true,
        ..trial
    }
}
