//! Errors in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) with the status
//! codes its clients act on: 400 bad request, 401 no or unknown API key, 403 a key that does
//! not cover the request, 404 unknown model or route, 409 conflict, 413 body too large, 429
//! queue full (with Retry-After), 500 a failure on our side, 503 shutting down, 504 too slow.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ragtune_core::GeneratorError;

/// An error a request gets back.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `permission_error`, `not_found_error`,
    /// `rate_limit_error`, `timeout_error`, `server_error`.
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code: None,
        }
    }

    pub fn model_not_found(model: &str, known: &[String]) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the model {model:?} does not exist; GET /v1/models lists what this server has ({})",
                known.join(", ")
            ),
            kind: "not_found_error",
            param: Some("model"),
            code: Some("model_not_found"),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            kind: "not_found_error",
            param: None,
            code: None,
        }
    }

    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "the request body is larger than this server's limit of {limit} bytes"
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_too_large"),
        }
    }

    /// No API key, or one this server does not know.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// A valid key whose scope or knowledge base does not cover the request.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            kind: "permission_error",
            param: None,
            code: Some("insufficient_permissions"),
        }
    }

    /// The request cannot be done to the thing as it is.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    /// The request ran longer than the server's limit (its generation was stopped).
    pub fn timeout(seconds: u64) -> Self {
        Self {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!(
                "the request ran longer than this server's limit of {seconds} s and was stopped; ask for fewer max_tokens or retry when the server is less busy"
            ),
            kind: "timeout_error",
            param: None,
            code: Some("request_timeout"),
        }
    }

    pub fn queue_full(queue: usize) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "the server is busy ({queue} requests are waiting); retry after a second"
            ),
            kind: "rate_limit_error",
            param: None,
            code: Some("queue_full"),
        }
    }

    pub fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server is shutting down".into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// The error body, as a value (also sent as the last event of a stream that fails).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl From<GeneratorError> for ApiError {
    fn from(e: GeneratorError) -> Self {
        match e {
            GeneratorError::ContextOverflow { .. } => Self {
                code: Some("context_length_exceeded"),
                param: Some("messages"),
                ..Self::bad_request(e.to_string(), None)
            },
            GeneratorError::InvalidRequest(_) => Self::bad_request(e.to_string(), None),
            GeneratorError::Transient(_) | GeneratorError::Permanent(_) => {
                Self::internal(e.to_string())
            }
        }
    }
}

impl From<ragtune_answer::Error> for ApiError {
    fn from(e: ragtune_answer::Error) -> Self {
        match e {
            ragtune_answer::Error::Generate { source, .. } => source.into(),
            ragtune_answer::Error::PromptTooLong { .. } => Self {
                code: Some("context_length_exceeded"),
                ..Self::bad_request(e.to_string(), Some("messages"))
            },
            other => Self::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
