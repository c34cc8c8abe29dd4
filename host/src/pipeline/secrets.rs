//! Stage 3: resolving `${{ secrets.NAME }}` references from the configured
//! provider. Values never enter templates, logs or the database.

use std::path::PathBuf;

use regex::Regex;
use serde_json::Value;

use super::schema_walk::visit_strings;

/// Environment variables (`<prefix>NAME`) first, then files `<dir>/NAME`.
#[derive(Debug, Clone)]
pub struct SecretProvider {
    pub env_prefix: Option<String>,
    pub dir: Option<PathBuf>,
}

impl SecretProvider {
    pub fn resolve(&self, name: &str) -> Option<String> {
        if let Some(prefix) = &self.env_prefix
            && let Ok(value) = std::env::var(format!("{prefix}{name}"))
        {
            return Some(value);
        }
        let dir = self.dir.as_ref()?;
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return None;
        }
        std::fs::read_to_string(dir.join(name))
            .ok()
            .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
    }

    /// Where secrets are looked up, for error messages (never values).
    pub fn describe(&self) -> String {
        let mut places = Vec::new();
        if let Some(p) = &self.env_prefix {
            places.push(format!("env {p}<NAME>"));
        }
        if let Some(d) = &self.dir {
            places.push(format!("dir {}", d.display()));
        }
        if places.is_empty() {
            "no secret provider configured".into()
        } else {
            places.join(", ")
        }
    }
}

fn reference_pattern() -> &'static Regex {
    static PATTERN: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"^\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$").expect("valid regex")
    })
}

/// `${{ secrets.NAME }}` → `NAME`.
pub fn reference_name(text: &str) -> Option<&str> {
    reference_pattern()
        .captures(text.trim())
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("required secret not available: {0}")]
    Missing(String),
    #[error("{place} must be a secret reference like ${{{{ secrets.NAME }}}}")]
    NotAReference { place: String },
}

/// Replaces every `x-secret` field of a strategy config with its resolved
/// value; returns the values for masking.
pub fn resolve_config_secrets(
    schema: &Value,
    config: &mut Value,
    provider: &SecretProvider,
) -> Result<Vec<String>, SecretError> {
    let mut resolved = Vec::new();
    let mut failure = None;
    visit_strings(schema, config, &mut |pointer, marks, text| {
        if !marks.secret || failure.is_some() {
            return;
        }
        match reference_name(text) {
            None => {
                failure = Some(SecretError::NotAReference {
                    place: format!("config{pointer}"),
                })
            }
            Some(name) => match provider.resolve(name) {
                Some(value) => {
                    resolved.push(value.clone());
                    *text = value;
                }
                None => failure = Some(SecretError::Missing(name.to_string())),
            },
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(resolved),
    }
}

/// Every secret value the configuration references and the provider has:
/// what the host masks in anything it shows or sends. The configuration is
/// scanned as text: a tree of a large fleet's configuration would cost more
/// memory than the daemon needs for everything else.
pub fn referenced_values(
    config: &crate::config::ConfigFile,
    provider: &SecretProvider,
) -> Vec<String> {
    static ANYWHERE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let pattern = ANYWHERE.get_or_init(|| {
        Regex::new(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}").expect("valid regex")
    });
    let text = serde_json::to_string(config).unwrap_or_default();
    let mut names: Vec<&str> = pattern
        .captures_iter(&text)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| provider.resolve(n))
        .collect()
}

/// Resolves a collector's `secretEnv` into its environment variables.
pub fn resolve_secret_env(
    secret_env: &std::collections::BTreeMap<String, String>,
    provider: &SecretProvider,
) -> Result<Vec<(String, String)>, SecretError> {
    secret_env
        .iter()
        .map(|(var, reference)| {
            let name = reference_name(reference).ok_or_else(|| SecretError::NotAReference {
                place: format!("secretEnv.{var}"),
            })?;
            let value = provider
                .resolve(name)
                .ok_or_else(|| SecretError::Missing(name.to_string()))?;
            Ok((var.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn referenced_secrets_are_found_anywhere_in_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        for (name, value) in [
            ("API", "api-value"),
            ("HOOK", "hook-value"),
            ("UNUSED", "x"),
        ] {
            std::fs::write(dir.path().join(name), value).unwrap();
        }
        let provider = SecretProvider {
            env_prefix: None,
            dir: Some(dir.path().into()),
        };
        let config: crate::config::ConfigFile = serde_yaml_ng::from_str(
            "api: {token: '${{ secrets.API }}'}\n\
             notifications: {targets: [{id: t, url: '${{secrets.HOOK}}'}]}\n\
             checks: [{id: c, strategy: {plugin: http, config: {auth: {bearer: '${{ secrets.MISSING }}'}}}}]\n",
        )
        .unwrap();
        assert_eq!(
            referenced_values(&config, &provider),
            ["api-value", "hook-value"]
        );
    }

    #[test]
    fn references_parse() {
        assert_eq!(
            reference_name("${{ secrets.API_TOKEN }}"),
            Some("API_TOKEN")
        );
        assert_eq!(reference_name("${{secrets.x}}"), Some("x"));
        assert_eq!(reference_name("plain"), None);
    }

    #[test]
    fn secrets_resolve_from_files_and_missing_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("DB_PASS"), "s3cret\n").unwrap();
        let provider = SecretProvider {
            env_prefix: None,
            dir: Some(dir.path().into()),
        };
        let schema = json!({"properties": {"password": {"type": "string", "x-secret": true}}});
        let mut config = json!({"password": "${{ secrets.DB_PASS }}"});
        assert_eq!(
            resolve_config_secrets(&schema, &mut config, &provider).unwrap(),
            vec!["s3cret"]
        );
        assert_eq!(config["password"], "s3cret");
        let mut missing = json!({"password": "${{ secrets.NOPE }}"});
        assert_eq!(
            resolve_config_secrets(&schema, &mut missing, &provider)
                .unwrap_err()
                .to_string(),
            "required secret not available: NOPE"
        );
        let env = [("TOKEN".to_string(), "${{ secrets.NOPE }}".to_string())]
            .into_iter()
            .collect();
        assert_eq!(
            resolve_secret_env(&env, &provider).unwrap_err(),
            SecretError::Missing("NOPE".into())
        );
    }
}
