//! The `http` strategy: requests over `wasi:http`, relative to an optional
//! base URL, with default headers.

use std::collections::BTreeMap;
use std::time::Duration;

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
        Ok(HttpClient {
            base,
            default_method: config.default_method.unwrap_or_else(|| "GET".into()),
            headers: config.headers.into_iter().collect(),
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
    fn v1_config_migrates_to_v2_and_v2_is_untouched() {
        testing::assert_migrates(
            &Http::migrations(),
            Http::CONFIG_VERSION,
            json!({"url": "http://x/", "method": "POST", "timeout": 5}),
            json!({"baseUrl": "http://x/", "defaultMethod": "POST", "timeoutMs": 5000}),
        );
    }
}
