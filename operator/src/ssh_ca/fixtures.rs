//! Keys shared by the tests of this module: RSA key generation takes seconds in debug builds, so each
//! key is made once per test binary.

use std::sync::LazyLock;

use rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

use super::keys::{CaKeys, generate_rsa};

/// The CA under test, generated like in production (Ed25519 + RSA-3072).
pub(super) static CA: LazyLock<CaKeys> =
    LazyLock::new(|| CaKeys::generate().expect("generate the test CA keys"));

/// A second Ed25519 key: the next CA key in rotation tests, or another CA in trust tests.
pub(super) static NEXT_ED25519: LazyLock<PrivateKey> =
    LazyLock::new(|| PrivateKey::random(&mut OsRng, Algorithm::Ed25519).expect("generate an Ed25519 key"));

/// A 2048-bit RSA key: the next CA key in rotation tests, and (its public half) an RSA user key.
pub(super) static NEXT_RSA: LazyLock<PrivateKey> =
    LazyLock::new(|| generate_rsa(2048).expect("generate an RSA key"));

/// A fresh Ed25519 user key (cheap).
pub(super) fn user_ed25519() -> PrivateKey {
    PrivateKey::random(&mut OsRng, Algorithm::Ed25519).expect("generate an Ed25519 key")
}
