//! The issuing ledgers, by AccessRequest UID: in memory only (a restart allows one more burst). Each
//! is locked while one of its CredentialRequests is decided and issued, so two requests for the
//! same key never both sign.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use jiff::Timestamp;
use passport_core::credentials::limit::{LIMITS, Ledger};

/// Past this many ledgers, idle ones are forgotten.
const LEDGERS_KEPT: usize = 64;

#[derive(Debug, Default)]
pub struct Ledgers(Mutex<HashMap<String, Arc<tokio::sync::Mutex<Ledger>>>>);

impl Ledgers {
    /// The ledger of the AccessRequest with this UID.
    pub fn of(&self, uid: &str) -> Arc<tokio::sync::Mutex<Ledger>> {
        let mut ledgers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if ledgers.len() > LEDGERS_KEPT {
            let now = Timestamp::now();
            ledgers.retain(|_, ledger| ledger.try_lock().map_or(true, |mut l| !l.idle(&LIMITS, now)));
        }
        ledgers.entry(uid.to_owned()).or_default().clone()
    }
}
