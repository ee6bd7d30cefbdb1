//! Waiting, one way each. A Kubernetes object is waited on through a watch ([`object`], [`any`]): the
//! apiserver says when it changes, so the wait ends as soon as the condition holds. Only what has no
//! watch (a TCP port, an HTTP endpoint, a process, a file, another program's answer) is polled, and
//! always through [`eventually`] (or [`eventually_blocking`] where no async runtime can run, such as
//! `Drop`): the check is an assertion that is retried until it passes or the time is up, and the
//! failure is the assertion's own last words.

use std::{
    fmt::Debug,
    future::Future,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use kube::{
    Api, Resource,
    runtime::{
        WatchStreamExt,
        wait::{Condition, await_condition},
        watcher,
    },
};
use serde::de::DeserializeOwned;

/// The first pause between two attempts; each later pause doubles, up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(200);

/// Runs `check` until it returns `Ok`, pausing briefly between attempts (20 ms, doubling up to
/// 200 ms). Fails with the last attempt's error, after `timeout`; or at once when `check` returns
/// an error made by [`give_up`].
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempts = Attempts::new(timeout);
    loop {
        match attempts.judge(check().await)? {
            Some(value) => return Ok(value),
            None => tokio::time::sleep(attempts.pause()).await,
        }
    }
}

/// [`eventually`] for code that cannot await (`Drop`, threads of its own): the pauses block the
/// thread.
pub fn eventually_blocking<T>(timeout: Duration, mut check: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempts = Attempts::new(timeout);
    loop {
        match attempts.judge(check())? {
            Some(value) => return Ok(value),
            None => std::thread::sleep(attempts.pause()),
        }
    }
}

/// Marks an error as final for [`eventually`]: the condition can no longer come true (the process
/// it waits for has exited, say), so waiting on is pointless.
pub fn give_up(error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(GiveUp(error.into()))
}

#[derive(Debug)]
struct GiveUp(anyhow::Error);

impl std::fmt::Display for GiveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for GiveUp {}

/// The deadline and pauses of one [`eventually`].
struct Attempts {
    timeout: Duration,
    deadline: Instant,
    pause: Duration,
}

impl Attempts {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            deadline: Instant::now() + timeout,
            pause: FIRST_PAUSE,
        }
    }

    /// `Some` when done, `None` to try again, an error when out of time or told to give up.
    fn judge<T>(&self, attempt: Result<T>) -> Result<Option<T>> {
        match attempt {
            Ok(value) => Ok(Some(value)),
            Err(error) => match error.downcast::<GiveUp>() {
                Ok(GiveUp(error)) => Err(error),
                Err(error) if Instant::now() >= self.deadline => {
                    Err(error.context(format!("still not so after {:?}", self.timeout)))
                }
                Err(_) => Ok(None),
            },
        }
    }

    fn pause(&mut self) -> Duration {
        let pause = self
            .pause
            .min(self.deadline.saturating_duration_since(Instant::now()));
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        pause
    }
}

/// Watches the object `name` until `condition` holds for it (`None`: it does not exist), within
/// `timeout`; returns the object as it was then.
pub async fn object<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    condition: impl Condition<K>,
) -> Result<Option<K>>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource<DynamicType = ()> + 'static,
{
    let kind = K::kind(&());
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(found) => found.with_context(|| format!("watching {kind} {name}")),
        Err(_) => bail!("{kind} {name}: the awaited condition did not hold within {timeout:?}"),
    }
}

/// Watches the objects of `api` until one satisfies `condition`, within `timeout`, and returns it.
pub async fn any<K>(api: &Api<K>, timeout: Duration, condition: impl Fn(&K) -> bool) -> Result<K>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource<DynamicType = ()> + 'static,
{
    let kind = K::kind(&());
    let matching = async {
        let objects = watcher(api.clone(), watcher::Config::default())
            .applied_objects()
            .try_filter(|object| futures::future::ready(condition(object)));
        std::pin::pin!(objects).try_next().await
    };
    match tokio::time::timeout(timeout, matching).await {
        Ok(Ok(Some(object))) => Ok(object),
        Ok(Ok(None)) => bail!("the watch of {kind} ended"),
        Ok(Err(err)) => Err(err).with_context(|| format!("watching {kind}")),
        Err(_) => bail!("no {kind} as awaited within {timeout:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_success() -> Result<()> {
        let mut tries = 0;
        let value = eventually(Duration::from_secs(5), || {
            tries += 1;
            let now = tries;
            async move {
                anyhow::ensure!(now >= 3, "only {now} tries");
                Ok(now)
            }
        })
        .await?;
        anyhow::ensure!(value == 3);
        Ok(())
    }

    #[tokio::test]
    async fn eventually_fails_with_the_last_words_after_the_timeout() {
        let started = Instant::now();
        let failed = eventually(Duration::from_millis(100), || async {
            anyhow::Result::<()>::Err(anyhow::anyhow!("port 1 is closed"))
        })
        .await;
        let message = format!("{:#}", failed.err().unwrap_or_else(|| anyhow::anyhow!("")));
        assert!(message.contains("still not so after 100ms"), "{message}");
        assert!(message.contains("port 1 is closed"), "{message}");
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn eventually_stops_at_once_when_told_to_give_up() {
        let started = Instant::now();
        let failed = eventually(Duration::from_secs(10), || async {
            anyhow::Result::<()>::Err(give_up(anyhow::anyhow!("sshd exited")))
        })
        .await;
        let message = format!("{:#}", failed.err().unwrap_or_else(|| anyhow::anyhow!("")));
        assert_eq!(message, "sshd exited");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn eventually_blocking_retries_like_eventually() {
        let mut tries = 0;
        let value = eventually_blocking(Duration::from_secs(5), || {
            tries += 1;
            anyhow::ensure!(tries >= 2, "first try");
            Ok(tries)
        });
        assert_eq!(value.ok(), Some(2));
    }
}
