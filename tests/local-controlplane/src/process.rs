//! Children that die with the test run, however it ends. `setpriv --pdeathsig=KILL` asks the kernel
//! to kill a child when its parent goes, but "parent" means the *thread* that forked it; test runners
//! end idle worker threads, which would kill servers other tests still use. So each child is forked
//! by a keeper thread that lives exactly as long as the [`Keeper`] handle.

use std::{
    process::{Child, Command, ExitStatus, Output},
    sync::mpsc,
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};

use crate::wait::eventually_blocking;

/// Keeps a child's forking thread alive. Dropping it ends the thread, and the kernel then kills the
/// child if it still runs.
#[derive(Debug)]
pub struct Keeper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A command for `program` that the kernel kills if its keeper thread ends: configure it (args,
/// env, stdio) as usual, then start it with [`spawn_kept`].
pub fn guarded(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command.arg("--pdeathsig=KILL").arg("--").arg(program);
    command
}

/// Spawns `command` (made with [`guarded`]) from a new keeper thread.
pub fn spawn_kept(mut command: Command) -> Result<(Child, Keeper)> {
    let program = command
        .get_args()
        .nth(2)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (child_tx, child_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new().name("keeper".into()).spawn(move || {
        let _ = child_tx.send(command.spawn());
        let _ = stop_rx.recv();
    })?;
    let child = child_rx
        .recv()
        .context("keeper thread died")?
        .with_context(|| format!("starting {program}"))?;
    Ok((
        child,
        Keeper {
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    ))
}

/// Asks `child` to stop (SIGTERM) and waits up to `grace` for it to exit; kills it if it has not.
/// Returns how it exited within the grace period, `None` if it had to be killed.
pub fn terminate(child: &mut Child, grace: Duration) -> Result<Option<ExitStatus>> {
    if let Some(status) = child.try_wait()? {
        return Ok(Some(status));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .context("running kill")?;
    let exited = eventually_blocking(grace, || {
        child.try_wait()?.context("the process still runs after SIGTERM")
    });
    match exited {
        Ok(status) => Ok(Some(status)),
        Err(_) => {
            child.kill()?;
            child.wait()?;
            Ok(None)
        }
    }
}

/// Runs `command` to its end and returns its output, failing with its stderr unless it succeeded.
/// `what` names it in errors, e.g. `ssh-keygen (openssh-client)`.
pub async fn checked_output(command: &mut tokio::process::Command, what: &str) -> Result<Output> {
    let output = command
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim_end()
    );
    Ok(output)
}
