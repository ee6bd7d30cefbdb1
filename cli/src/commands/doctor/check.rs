//! A check's verdict and the line `doctor` prints for it.

/// How bad a finding is. Only `Fail` makes `doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of `doctor`'s report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub(super) fn new(
        check: impl Into<String>,
        status: Status,
        message: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            check: check.into(),
            status,
            message: message.into(),
            fix,
        }
    }

    pub(super) fn ok(check: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(check, Status::Ok, message, None)
    }

    /// The line as printed: status, check, message and fix.
    pub fn line(&self) -> String {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        let fix = self
            .fix
            .as_ref()
            .map(|f| format!("; fix: {f}"))
            .unwrap_or_default();
        format!("{status:<4}  {:<34} {}{fix}", self.check, self.message)
    }
}

/// Whether `checks` leave the plugin usable.
pub fn blocks_use(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}
