//! Failures as Kubernetes `Status` objects (docs/api.md, Errors).

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::diag::{Code, Diagnostic, Severity};
use crate::model::Kind;
use crate::store::StoreError;

/// One failed request: the HTTP code, the Status reason, a message, and what it was about.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    /// `details.kind`: the plural of the path, when the request named one.
    pub kind: Option<Kind>,
    /// `details.name`, when the request named an object.
    pub name: Option<String>,
    /// `details.causes`, for `Invalid`.
    pub causes: Vec<Value>,
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            kind: None,
            name: None,
            causes: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "Timeout", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
    }

    pub fn with_kind(mut self, kind: Kind) -> ApiError {
        self.kind = Some(kind);
        self
    }

    pub fn with_name(mut self, name: impl Into<String>) -> ApiError {
        let name = name.into();
        if !name.is_empty() {
            self.name = Some(name);
        }
        self
    }

    /// The Status object.
    pub fn to_json(&self) -> Value {
        let mut status = json!({
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.name {
            details.insert("name".into(), Value::String(name.clone()));
        }
        if let Some(kind) = self.kind {
            details.insert("kind".into(), Value::String(kind.plural().to_string()));
        }
        if !self.causes.is_empty() {
            details.insert("causes".into(), Value::Array(self.causes.clone()));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }

    /// A store failure. `Unavailable` messages may name files but never credentials: the store's
    /// messages are written for the CLI user, who is the server's operator here; a client sees them too,
    /// so anything that is not a plain outcome is reported without the store's own words.
    pub fn from_store(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(key) => ApiError::not_found(format!("{key} not found"))
                .with_kind(key.kind)
                .with_name(key.name),
            StoreError::AlreadyExists(key) => {
                ApiError::new(StatusCode::CONFLICT, "AlreadyExists", format!("{key} already exists"))
                    .with_kind(key.kind)
                    .with_name(key.name)
            }
            ref err @ StoreError::Conflict { ref key, .. } => {
                let (kind, name) = (key.kind, key.name.clone());
                ApiError::new(StatusCode::CONFLICT, "Conflict", err.to_string())
                    .with_kind(kind)
                    .with_name(name)
            }
            ref err @ StoreError::Invalid {
                ref key,
                ref diagnostics,
            } => {
                let mut api = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", err.to_string())
                    .with_kind(key.kind)
                    .with_name(key.name.clone());
                api.causes = causes(diagnostics);
                api
            }
            ref err @ StoreError::Compacted { .. } => ApiError::new(StatusCode::GONE, "Expired", err.to_string()),
            StoreError::Forbidden(m) => ApiError::forbidden(m),
            StoreError::Unauthorized(m) => ApiError::unauthorized(m),
            StoreError::BadRequest(m) => ApiError::bad_request(m),
            StoreError::Unavailable(m) => {
                // The operator sees the details in the server's log; the client learns only that the
                // store failed.
                eprintln!("meshctl serve: store error: {}", crate::server::log_safe(&m));
                ApiError::unavailable("the config store is unavailable; the server's log says why")
            }
        }
    }
}

/// `details.causes` for the error-level diagnostics, in their order.
pub fn causes(diagnostics: &[Diagnostic]) -> Vec<Value> {
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let reason = match d.code {
                Code::MissingField => "FieldValueRequired",
                Code::InvalidValue => "FieldValueNotSupported",
                Code::DuplicatePort => "FieldValueDuplicate",
                _ => "FieldValueInvalid",
            };
            let mut cause = serde_json::Map::new();
            cause.insert("reason".into(), Value::from(reason));
            if let Some(field) = &d.field {
                cause.insert("field".into(), Value::from(field.as_str()));
            }
            cause.insert("message".into(), Value::from(d.message.as_str()));
            cause.insert("code".into(), Value::from(d.code.id()));
            Value::Object(cause)
        })
        .collect()
}
