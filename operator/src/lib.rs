//! passport's operator: controllers for the passport.dev kinds, the SSH certificate authority, the
//! scripts it runs on instances through SSM, and the HTTP surface for health and metrics.
#![forbid(unsafe_code)]

pub mod approval;
pub mod aws;
pub mod ca_store;
pub mod conditions;
pub mod controller;
pub mod credentials;
pub mod http;
pub mod leader;
pub mod lifecycle;
pub mod logbook;
pub mod metrics;
pub mod preflight;
pub mod scripts;
pub mod secrets;
pub mod ssh_ca;
