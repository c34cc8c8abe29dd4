//! The API from the other side: what `checkhost incident` and `checkhost
//! mcp` call on a running daemon, with its token, errors worded from the
//! API's own `{error, message, field}`.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reaching checkhost at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{url}: {status}: {message}{}", field.as_ref().map(|f| format!(" (field `{f}`)")).unwrap_or_default())]
    Refused {
        url: String,
        status: reqwest::StatusCode,
        message: String,
        field: Option<String>,
    },
}

/// A daemon's API at `base` (`http://127.0.0.1:8080`).
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> ApiClient {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// One call; the answer's JSON, or the API's refusal.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            return Err(ClientError::Refused {
                message: value["message"]
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string),
                field: value["field"].as_str().map(str::to_string),
                url,
                status,
            });
        }
        Ok(value)
    }
}
