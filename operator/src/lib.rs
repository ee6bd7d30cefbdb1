//! passport's operator: the controllers and the edges they act through (the Kubernetes API, AWS SSM
//! and STS, the HTTP surface for health and metrics, leader election). Every decision is made in
//! `passport_core`; this crate gathers its inputs and carries out its outputs.
#![forbid(unsafe_code)]

pub mod aws;
pub mod cluster;
pub mod controller;
pub mod error;
pub mod http;
pub mod leader;
pub mod logbook_sink;
pub mod metrics;
pub mod preflight;
