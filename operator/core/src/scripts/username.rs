//! The names of passport's short-lived OS users: `rs-<masked-id>[-<suffix>]`.
//!
//! The masked id is derived from the requester with a keyed hash, so the same person always gets the
//! same name (useful in audit logs and `last` output on the instance) while the name reveals nothing
//! about who they are to someone without the operator's key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Every passport username starts with this; the sshd configuration matches on `rs-*`.
pub const USERNAME_PREFIX: &str = "rs-";
/// Number of hex characters in the masked id.
const MASKED_HEX_LEN: usize = 8;
/// Longest suffix of the domain-controller form.
pub const MAX_SUFFIX_LEN: usize = 6;
/// Longest username: Active Directory's `sAMAccountName` holds at most 20 characters.
pub const MAX_USERNAME_LEN: usize = 20;

/// Length of `rs-` plus the masked id.
const BASE_LEN: usize = USERNAME_PREFIX.len() + MASKED_HEX_LEN;

/// Returns `rs-` followed by the first 8 hex characters of HMAC-SHA256(`key`, `requester`).
///
/// Stable for a requester as long as the key is; without the key the name cannot be tied back to the
/// requester (short of guessing both). 32 bits of the MAC are kept, so two requesters collide with
/// probability about n²/2³³ among n requesters; the scripts refuse to take over an account passport
/// did not create, but callers that need uniqueness must still compare requesters.
pub fn masked_username(requester: &str, key: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(requester.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("{USERNAME_PREFIX}{}", hex::encode(&digest[..MASKED_HEX_LEN / 2]))
}

/// Returns the `rs-xxxxxxxx-<suffix>` form used for accounts on Windows domain controllers, where an
/// account is visible domain-wide and so must not clash with the local `rs-xxxxxxxx` accounts.
///
/// `suffix` is normalised rather than rejected: ASCII letters and digits are kept (lowercased), other
/// characters dropped, and the result cut to [`MAX_SUFFIX_LEN`]; an empty result yields `base`
/// unchanged. If `base` already carries a suffix it is replaced. The result is a passport username
/// (at most [`MAX_USERNAME_LEN`] characters) whenever `base` is one.
pub fn domain_username(base: &str, suffix: &str) -> String {
    let stem = match base.get(..BASE_LEN) {
        Some(stem) if is_passport_username(base) => stem,
        _ => base,
    };
    let suffix: String = suffix
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(MAX_SUFFIX_LEN)
        .collect();
    if suffix.is_empty() {
        stem.to_owned()
    } else {
        format!("{stem}-{suffix}")
    }
}

/// Whether `s` is exactly `^rs-[0-9a-f]{8}(-[a-z0-9]{1,6})?$`.
///
/// Both the operator and the scripts check this before acting, so a bug elsewhere can never make
/// passport create or delete an account with any other name (`root`, `ec2-user`, ...).
pub fn is_passport_username(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(USERNAME_PREFIX) else {
        return false;
    };
    let (hex, suffix) = match rest.split_once('-') {
        Some((hex, suffix)) => (hex, Some(suffix)),
        None => (rest, None),
    };
    let hex_ok = hex.len() == MASKED_HEX_LEN && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let suffix_ok = suffix.is_none_or(|sfx| {
        (1..=MAX_SUFFIX_LEN).contains(&sfx.len())
            && sfx.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    hex_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn masked_username_is_stable_and_well_formed() {
        let alice = masked_username("alice@example.com", KEY);
        assert_eq!(alice, masked_username("alice@example.com", KEY));
        assert!(is_passport_username(&alice), "{alice}");
        assert_eq!(alice.len(), 11);
        assert_ne!(alice, masked_username("bob@example.com", KEY));
        assert_ne!(alice, masked_username("alice@example.com", b"another key"));
        // Not a plain hash of the requester: the key matters, and the id is not the requester.
        assert!(!alice.contains("alice"));
    }

    #[test]
    fn masked_username_matches_known_hmac() {
        // HMAC-SHA256 test case 2 of RFC 4231: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            masked_username("what do ya want for nothing?", b"Jefe"),
            "rs-5bdcc146"
        );
    }

    #[test]
    fn domain_username_forms() {
        assert_eq!(domain_username("rs-5f3a9c21", "dc1"), "rs-5f3a9c21-dc1");
        assert_eq!(
            domain_username("rs-5f3a9c21", "Team_A!42xyz"),
            "rs-5f3a9c21-teama4"
        );
        assert_eq!(domain_username("rs-5f3a9c21", "\u{e9}--"), "rs-5f3a9c21");
        assert_eq!(domain_username("rs-5f3a9c21-old", "new"), "rs-5f3a9c21-new");
        let long = domain_username("rs-5f3a9c21", "abcdefghijkl");
        assert!(
            long.len() <= MAX_USERNAME_LEN && is_passport_username(&long),
            "{long}"
        );
    }

    #[test]
    fn passport_username_check_is_strict() {
        for good in [
            "rs-5f3a9c21",
            "rs-00000000",
            "rs-5f3a9c21-a",
            "rs-5f3a9c21-abc123",
        ] {
            assert!(is_passport_username(good), "{good}");
        }
        for bad in [
            "",
            "rs-",
            "root",
            "rs-5f3a9c2",
            "rs-5f3a9c211",
            "rs-5F3A9C21",
            "rs-5f3a9c2g",
            "rs-5f3a9c21-",
            "rs-5f3a9c21-abcdefg",
            "rs-5f3a9c21-ABC",
            "rs-5f3a9c21-a-b",
            "rs-5f3a9c21-a_b",
            "xrs-5f3a9c21",
            " rs-5f3a9c21",
            "rs-5f3a9c21\n",
            "rs-5f3a9c21 ",
            "rs-5f3a9c21-\u{e9}",
            "rs-\u{661}f3a9c21",
        ] {
            assert!(!is_passport_username(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn every_requester_gets_a_valid_name(requester in any::<String>(), key in any::<Vec<u8>>()) {
            prop_assert!(is_passport_username(&masked_username(&requester, &key)));
        }

        #[test]
        fn domain_names_fit_sam_account_name(requester in any::<String>(), suffix in any::<String>()) {
            let name = domain_username(&masked_username(&requester, KEY), &suffix);
            prop_assert!(is_passport_username(&name), "{}", name);
            prop_assert!(name.len() <= MAX_USERNAME_LEN);
        }

        #[test]
        fn check_agrees_with_the_regex(s in "(rs-)?[0-9a-fA-F]{7,9}(-[a-z0-9_]{0,7})?") {
            let b = s.as_bytes();
            let expected = s.starts_with("rs-")
                && b.len() >= 11
                && b[3..11].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                && (b.len() == 11
                    || (b[11] == b'-'
                        && (2..=7).contains(&(b.len() - 11))
                        && b[12..].iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())));
            prop_assert_eq!(is_passport_username(&s), expected, "{}", s);
        }
    }
}
