//! passport's decisions, as pure functions: what the operator does next with an AccessRequest
//! ([`lifecycle`]), whether it is approved ([`approval`]), which AWS account it uses ([`account`]),
//! whether and what to issue for a CredentialRequest
//! ([`credentials`]), the scripts sent to instances ([`scripts`]) and the SSH certificate authority
//! ([`ssh_ca`]). Nothing here talks to Kubernetes or AWS or needs an async runtime: every input is
//! gathered by the operator's controllers, every output is carried out by them.
#![forbid(unsafe_code)]

pub mod account;
pub mod approval;
pub mod credentials;
pub mod lifecycle;
pub mod logbook;
pub mod milestones;
pub mod scripts;
pub mod ssh_ca;
pub mod time;

#[cfg(test)]
mod fixtures;
