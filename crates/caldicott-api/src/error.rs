//! Every failure of the API as an HTTP status and a FHIR `OperationOutcome`.
//!
//! Messages name the element or parameter at fault, never a value: a value may be an NHS
//! number or a name, and error text ends up in logs and on screens.

use axum::http::StatusCode;
use caldicott_vault::VaultError;
use serde_json::{Value, json};

/// The `OperationOutcome.issue.code` values the API uses (a subset of the R4 `issue-type`
/// code system).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    NotFound,
    Deleted,
    Conflict,
    TooLong,
    NotSupported,
    BusinessRule,
    MultipleMatches,
    Processing,
    Exception,
    Security,
    Informational,
}

impl IssueType {
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::Conflict => "conflict",
            IssueType::TooLong => "too-long",
            IssueType::NotSupported => "not-supported",
            IssueType::BusinessRule => "business-rule",
            IssueType::MultipleMatches => "multiple-matches",
            IssueType::Processing => "processing",
            IssueType::Exception => "exception",
            IssueType::Security => "security",
            IssueType::Informational => "informational",
        }
    }
}

/// One issue of an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub code: IssueType,
    pub diagnostics: String,
    /// FHIRPath of the element at fault (`Patient.birthDate`), when there is one.
    pub expression: Option<String>,
}

/// A failed request: the status to answer with and the issues to report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {}", issues.first().map(|i| i.diagnostics.as_str()).unwrap_or(""))]
pub struct ApiError {
    pub status: StatusCode,
    pub issues: Vec<Issue>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: IssueType, diagnostics: impl Into<String>) -> Self {
        ApiError {
            status,
            issues: vec![Issue {
                code,
                diagnostics: diagnostics.into(),
                expression: None,
            }],
        }
    }

    /// Names the element at fault.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        if let Some(i) = self.issues.first_mut() {
            i.expression = Some(expression.into());
        }
        self
    }

    pub fn bad_request(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, IssueType::Invalid, diagnostics)
    }

    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, IssueType::NotFound, diagnostics)
    }

    pub fn gone(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, IssueType::Deleted, diagnostics)
    }

    pub fn conflict(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, IssueType::Conflict, diagnostics)
    }

    pub fn precondition(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            IssueType::Conflict,
            diagnostics,
        )
    }

    pub fn unprocessable(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            IssueType::BusinessRule,
            diagnostics,
        )
    }

    pub fn not_supported(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            IssueType::NotSupported,
            diagnostics,
        )
    }

    pub fn internal(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            diagnostics,
        )
    }

    /// The `OperationOutcome` resource for this error.
    pub fn outcome(&self) -> Value {
        outcome(&self.issues, "error")
    }
}

/// An `OperationOutcome` with the given issues at one severity.
pub fn outcome(issues: &[Issue], severity: &str) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut v = json!({
                "severity": severity,
                "code": i.code.code(),
                "diagnostics": i.diagnostics,
            });
            if let Some(e) = &i.expression {
                v["expression"] = json!([e]);
            }
            v
        })
        .collect();
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

/// An informational outcome (for example the body of a successful delete).
pub fn information(diagnostics: &str) -> Value {
    outcome(
        &[Issue {
            code: IssueType::Informational,
            diagnostics: diagnostics.to_owned(),
            expression: None,
        }],
        "information",
    )
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Conflict { rtype, id, .. } => ApiError::conflict(format!(
                "{rtype}/{id} was changed by another request at the same time; read it again and retry"
            )),
            VaultError::DuplicateInBatch { rtype, id } => {
                ApiError::bad_request(format!("the bundle changes {rtype}/{id} more than once"))
            }
            VaultError::TooLarge(n) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                IssueType::TooLong,
                format!("resource of {n} bytes is too large to store"),
            ),
            VaultError::Integrity {
                rtype, id, version, ..
            } => {
                // Loud in the log: this is tampering or corruption.
                tracing::error!(%rtype, %id, version, "stored record failed its integrity check");
                ApiError::internal(format!(
                    "{rtype}/{id} version {version} failed its integrity check and is withheld; the operator has been alerted"
                ))
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    IssueType::Exception,
                    "the record store is unavailable; try again later",
                )
            }
        }
    }
}

impl From<caldicott_fhir::search::query::QueryError> for ApiError {
    fn from(e: caldicott_fhir::search::query::QueryError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_errors_map_to_statuses_without_detail_leaking() {
        let conflict: ApiError = VaultError::Conflict {
            rtype: "Patient".into(),
            id: "p1".into(),
            expected: "version 1".into(),
            found: "version 2".into(),
        }
        .into();
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        assert_eq!(conflict.outcome()["issue"][0]["code"], "conflict");
        let integrity: ApiError = VaultError::Integrity {
            org: "A81001".into(),
            rtype: "Patient".into(),
            id: "p1".into(),
            version: 3,
        }
        .into();
        assert_eq!(integrity.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!integrity.outcome().to_string().contains("A81001"));
        let big: ApiError = VaultError::TooLarge(1 << 30).into();
        assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
