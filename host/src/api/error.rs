//! API errors as JSON `{error, message, field?}` with their status codes,
//! and a query extractor that refuses unknown parameters the same way.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::StoreError;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `not_found`, `unauthorized`,
    /// `forbidden`, `database_unavailable`, …
    pub error: String,
    pub message: String,
    /// The parameter or field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                message: message.into(),
                field: None,
            },
        }
    }

    pub fn bad_request(field: &str, message: impl Into<String>) -> ApiError {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "bad_request", message);
        e.body.field = Some(field.into());
        e
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn method_not_allowed() -> ApiError {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        )
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn timeout(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::REQUEST_TIMEOUT, "timeout", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::warn!("API read failed: {e}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            format!("the database did not answer: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Query parameters into `T`, whose `deny_unknown_fields` makes an unknown
/// parameter a 400 that names it.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Params)
            .map_err(|e| {
                let message = e.inner().to_string();
                let field = unknown_field(&message)
                    .or_else(|| Some(e.path().to_string()).filter(|p| p != "."))
                    .unwrap_or_else(|| "query".into());
                ApiError::bad_request(&field, format!("query parameter: {message}"))
            })
    }
}

/// The name in serde's "unknown field `x`, expected …".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// `from`/`to`: Unix milliseconds or an RFC 3339 time.
pub fn time_param(field: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(Some(ms));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.timestamp_millis()))
        .map_err(|_| {
            ApiError::bad_request(
                field,
                format!("`{text}` is neither Unix milliseconds nor an RFC 3339 time"),
            )
        })
}

/// `limit`: 1–1000, default 100.
pub fn limit_param(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "limit",
            format!("{n} is outside 1–1000"),
        )),
    }
}

/// `cursor`: the `nextCursor` of the previous page.
pub fn cursor_param(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::bad_request("cursor", "not a cursor this API handed out"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_named() {
        assert_eq!(
            unknown_field("unknown field `sytem`, expected one of `system`"),
            Some("sytem".into())
        );
        assert_eq!(time_param("from", Some("1000")).unwrap(), Some(1000));
        assert_eq!(
            time_param("from", Some("2026-11-26T00:00:00Z")).unwrap(),
            Some(1_795_651_200_000)
        );
        let e = time_param("to", Some("yesterday")).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("to"));
        assert!(limit_param(Some(0)).is_err() && limit_param(Some(1001)).is_err());
        assert_eq!(limit_param(None).unwrap(), 100);
        assert!(cursor_param(Some("abc")).is_err());
        assert_eq!(cursor_param(Some("42")).unwrap(), Some(42));
    }
}
