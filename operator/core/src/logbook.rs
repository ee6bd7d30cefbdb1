//! The logbook's vocabulary: what happened to an AccessRequest, in words for people and a stable
//! action name for machines. The operator turns each entry into a Kubernetes Event (and, with the
//! external sink, a CloudEvent `dev.passport.accessrequest.<action>`); [`record`] keeps each in the
//! request's durable record.

pub mod record;

/// One logbook entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub action: LogAction,
    pub message: String,
    pub warning: bool,
}

impl LogEvent {
    pub fn normal(action: LogAction, message: impl Into<String>) -> Self {
        Self {
            action,
            message: message.into(),
            warning: false,
        }
    }

    pub fn warning(action: LogAction, message: impl Into<String>) -> Self {
        Self {
            action,
            message: message.into(),
            warning: true,
        }
    }
}

/// The actions of the contract. [`LogAction::as_str`] spells them as the Event's `action` and the
/// CloudEvent type do: lowercase `snake_case` (`credential_issued`), an identifier in jq and log
/// query languages, which a hyphen is not. [`LogAction::reason`] is the CamelCase Event reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum LogAction {
    Created,
    Approved,
    Denied,
    Provisioned,
    /// Credentials (a certificate, a scoped AWS session) were issued through a CredentialRequest.
    CredentialIssued,
    Extended,
    Completed,
    Expired,
    Revoked,
    Failed,
    /// Revocation keeps failing on some instance; an administrator may have to act.
    RevocationStuck,
    /// Revocation went through after it had been reported stuck.
    RevocationResumed,
}

impl LogAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The Event reason: `credential_issued` becomes `CredentialIssued`.
    pub fn reason(self) -> String {
        camel_case(self.as_str())
    }
}

/// `snake_case` to `CamelCase`, for Event reasons and condition reasons derived from names.
pub fn camel_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    #[test]
    fn actions_are_snake_case_and_reasons_camel_case() {
        assert_eq!(LogAction::CredentialIssued.as_str(), "credential_issued");
        assert_eq!(LogAction::CredentialIssued.reason(), "CredentialIssued");
        assert_eq!(LogAction::Approved.reason(), "Approved");
        for action in LogAction::iter() {
            assert!(
                action
                    .as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
    }
}
