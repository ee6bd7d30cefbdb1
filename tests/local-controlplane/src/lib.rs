//! A real Kubernetes control plane on loopback for tests, without containers: etcd and kube-apiserver
//! built from their official Go modules (`build.sh`), started the way controller-runtime's envtest
//! starts them, with RBAC and client-certificate users; kube-controller-manager's namespace and
//! garbage-collector controllers when asked ([`Options::controller_manager`]); pods scheduled and
//! "run" on a kwok fake node when asked ([`Options::workloads`]); kubeconfigs that work
//! with the real `kubectl`; children that die with the test run; and waits that watch.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use local_controlplane::{ControlPlane, User};
//! let plane = ControlPlane::options()
//!     .users([User::new("dev", ["developers"])])
//!     .start()
//!     .await?;
//! let dev = plane.user_client("dev").await?;
//! # drop(dev);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod binaries;
pub mod controlplane;
pub mod kubeconfig;
pub mod kubectl;
pub mod pki;
pub mod process;
pub mod wait;
pub mod workloads;

pub use controlplane::{ControlPlane, Options, User, client_from};
pub use wait::{eventually, eventually_blocking, give_up};
