//! passport's end-to-end suite on real parts: a real kube-apiserver and etcd (see the `controlplane`
//! harness), the real `kubectl`, and the real operator binary. One control plane serves the whole run;
//! each test works in its own namespace. It starts lazily, so filtering to no e2e test starts nothing.

mod admission;
mod aws;
mod bench;
mod cli;
mod credentials;
mod env;
mod instance;
mod lifecycle;
mod operator;
mod scenario;
mod schema;

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
    let mut trials = Vec::new();
    trials.extend(schema::trials());
    trials.extend(operator::trials());
    trials.extend(instance::trials());
    trials.extend(aws::trials());
    trials.extend(lifecycle::trials());
    trials.extend(admission::trials());
    trials.extend(bench::trials());
    trials.extend(credentials::trials());
    trials.extend(cli::trials());
    let trials = trials
        .into_iter()
        .map(|(name, test)| {
            let (env, runtime) = (env.clone(), runtime.clone());
            Trial::test(name, move || {
                runtime
                    .block_on(test(env))
                    .map_err(|err| Failed::from(format!("{err:#}")))
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    runtime.block_on(env.shutdown());
    conclusion.exit_code()
}

/// A test: an async function of the shared environment.
pub type TestFn =
    Box<dyn FnOnce(Arc<Env>) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send>;

/// Wraps an async test function for the runner.
pub fn test<F, Fut>(name: &'static str, f: F) -> (&'static str, TestFn)
where
    F: FnOnce(Arc<Env>) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    (name, Box::new(move |env| Box::pin(f(env))))
}
