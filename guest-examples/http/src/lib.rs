//! The `http` strategy: requests over `wasi:http`, relative to an optional
//! base URL, with default headers.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use checkhost_sdk::http::{self, Url};
use checkhost_sdk::{
    Client, Migrations, Request, Response, RunContext, Strategy, TransportError, Value,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// Config v2. v1 carried `url`, `method` and `timeout` (seconds) here; v2
/// keeps only what every request shares, requests are the collectors' business.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Base URL that relative request targets are resolved against.
    #[schemars(extend("x-templatable" = true))]
    pub base_url: Option<String>,
    /// Method used when a request names none.
    #[serde(default)]
    pub default_method: Option<String>,
    /// Headers sent with every request; values are templatable.
    #[serde(default)]
    #[schemars(extend("x-templatable" = true))]
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout; the run deadline always applies too.
    pub timeout_ms: Option<u32>,
    /// Credentials sent with every request.
    #[serde(default)]
    pub auth: Option<Auth>,
}

/// One way to authenticate. Secret fields take a secret reference
/// (`${{ secrets.NAME }}`): the host resolves it for the run and masks the
/// value in everything it keeps or shows.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Auth {
    /// Sent as `Authorization: Bearer <token>`.
    #[schemars(extend("x-secret" = true))]
    pub bearer: Option<String>,
    /// With `password`: `Authorization: Basic …`.
    pub username: Option<String>,
    #[schemars(extend("x-secret" = true))]
    pub password: Option<String>,
    /// A header of your own whose value is secret, e.g. `X-Api-Key`.
    pub header: Option<String>,
    #[schemars(extend("x-secret" = true))]
    pub value: Option<String>,
}

impl Auth {
    /// The header this auth adds, or why the combination is wrong.
    fn header(self) -> Result<(String, String), TransportError> {
        let wrong = |message: &str| TransportError::BadConfig(format!("auth: {message}"));
        match (
            self.bearer,
            self.username,
            self.password,
            self.header,
            self.value,
        ) {
            (Some(token), None, None, None, None) => {
                Ok(("authorization".into(), format!("Bearer {token}")))
            }
            (None, Some(user), Some(password), None, None) => Ok((
                "authorization".into(),
                format!("Basic {}", BASE64.encode(format!("{user}:{password}"))),
            )),
            (None, None, None, Some(name), Some(value)) => Ok((name, value)),
            (None, Some(_), None, None, None) | (None, None, Some(_), None, None) => {
                Err(wrong("basic needs both `username` and `password`"))
            }
            (None, None, None, Some(_), None) | (None, None, None, None, Some(_)) => {
                Err(wrong("a custom header needs both `header` and `value`"))
            }
            (None, None, None, None, None) => Err(wrong(
                "give `bearer`, `username`+`password` or `header`+`value`",
            )),
            _ => Err(wrong(
                "use one of `bearer`, `username`+`password` or `header`+`value`",
            )),
        }
    }
}

pub struct Http;

/// v1 → v2: `url` becomes `baseUrl`, `method` becomes `defaultMethod`,
/// `timeout` in seconds becomes `timeoutMs`. A v2 config has none of these
/// keys and passes through unchanged.
fn v1_to_v2(mut config: Value) -> Result<Value, String> {
    let obj = config
        .as_object_mut()
        .ok_or("http config must be an object")?;
    if let Some(url) = obj.remove("url") {
        obj.insert("baseUrl".into(), url);
    }
    if let Some(method) = obj.remove("method") {
        obj.insert("defaultMethod".into(), method);
    }
    if let Some(timeout) = obj.remove("timeout") {
        let secs = timeout
            .as_f64()
            .ok_or("`timeout` must be a number of seconds")?;
        obj.insert("timeoutMs".into(), Value::from((secs * 1000.0) as u64));
    }
    Ok(config)
}

impl Strategy for Http {
    const ID: &'static str = "http";
    const DISPLAY_NAME: &'static str = "HTTP";
    const DESCRIPTION: &'static str = "HTTP(S) requests through the host's policed wasi:http";
    const CONFIG_VERSION: u32 = 2;
    type Config = Config;
    type Client = HttpClient;

    fn migrations() -> Migrations {
        Migrations::new().step(1, v1_to_v2)
    }

    fn connect(config: Config, _ctx: &RunContext) -> Result<HttpClient, TransportError> {
        let base = config.base_url.as_deref().map(Url::parse).transpose()?;
        let mut headers: Vec<(String, String)> = config.headers.into_iter().collect();
        if let Some(auth) = config.auth {
            headers.push(auth.header()?);
        }
        Ok(HttpClient {
            base,
            default_method: config.default_method.unwrap_or_else(|| "GET".into()),
            headers,
            timeout: config.timeout_ms.map(|ms| Duration::from_millis(ms.into())),
        })
    }
}

pub struct HttpClient {
    base: Option<Url>,
    default_method: String,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
}

impl Client for HttpClient {
    fn exec(&mut self, req: Request) -> Result<Response, TransportError> {
        let url = match &self.base {
            Some(base) => base.join(&req.target)?,
            None => Url::parse(&req.target)?,
        };
        let method = if req.method.is_empty() {
            &self.default_method
        } else {
            &req.method
        };
        let mut headers = self.headers.clone();
        headers.extend(req.headers);
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .or(self.timeout);
        http::send(method, &url, &headers, &req.body, timeout)
    }
}

checkhost_sdk::export_strategy!(Http);

#[cfg(test)]
mod tests {
    use super::*;
    use checkhost_sdk::{json, testing};

    #[test]
    fn auth_makes_one_header_and_refuses_half_combinations() {
        let auth = |v: Value| serde_json::from_value::<Auth>(v).unwrap().header();
        assert_eq!(
            auth(json!({"bearer": "t0k"})).unwrap(),
            ("authorization".into(), "Bearer t0k".into())
        );
        assert_eq!(
            auth(json!({"username": "ops", "password": "pw"}))
                .unwrap()
                .1,
            "Basic b3BzOnB3"
        );
        assert_eq!(
            auth(json!({"header": "X-Api-Key", "value": "k"})).unwrap(),
            ("X-Api-Key".into(), "k".into())
        );
        for bad in [
            json!({"username": "ops"}),
            json!({"bearer": "t", "header": "X"}),
            json!({}),
        ] {
            assert!(auth(bad).is_err());
        }
    }

    #[test]
    fn v1_config_migrates_to_v2_and_v2_is_untouched() {
        testing::assert_migrates(
            &Http::migrations(),
            Http::CONFIG_VERSION,
            json!({"url": "http://x/", "method": "POST", "timeout": 5}),
            json!({"baseUrl": "http://x/", "defaultMethod": "POST", "timeoutMs": 5000}),
        );
    }
}
