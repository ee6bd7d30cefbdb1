//! passport's test harness: what the end-to-end suite and the local demo need besides the reusable
//! control plane ([`local_controlplane`]): passport's users and CRDs on it, the AWS emulator, the
//! OpenSSH test instance, the operator as a child process, the OpenSSH client, and typed builders
//! for passport's objects ([`fixtures`]).
#![forbid(unsafe_code)]

pub mod aws;
pub mod binaries;
pub mod cloudevents;
pub mod controlplane;
pub mod crds;
pub mod ec2;
pub mod faults;
pub mod fixtures;
pub mod instance;
pub mod json_api;
pub mod metrics;
pub mod operator;
pub mod requests;
pub mod session_manager;
pub mod ssh;
pub mod tools;

pub use local_controlplane::{self, ControlPlane, kubectl, wait};
