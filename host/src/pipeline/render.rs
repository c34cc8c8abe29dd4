//! Stage 4: rendering `x-templatable` string leaves per environment with
//! minijinja. Any undefined reference renders empty, however deep
//! (`{{ environment.x.y }}` with no `x`), as in the seed; everything else is
//! copied verbatim, `{{` and all; secrets are never in the context.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Value, json};

use super::schema_walk::visit_strings;

/// The template context of one run.
pub fn context(
    environment: Option<&crate::config::Environment>,
    check: &crate::config::Check,
    interval_seconds: u64,
    system: &crate::config::System,
) -> Value {
    json!({
        "environment": environment.map(|e| {
            let mut fields = e.fields.clone();
            fields.entry("id").or_insert_with(|| Value::String(e.id.clone()));
            fields.entry("name").or_insert_with(|| Value::String(e.name.clone().unwrap_or_else(|| e.id.clone())));
            Value::Object(fields)
        }).unwrap_or_else(|| json!({})),
        "check": {"id": check.id, "name": check.name.clone().unwrap_or_else(|| check.id.clone()), "intervalSeconds": interval_seconds},
        "system": {"id": system.id, "name": system.name.clone().unwrap_or_else(|| system.id.clone()), "metadata": system.metadata},
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render config{pointer}: {message}")]
pub struct RenderError {
    pub pointer: String,
    pub message: String,
}

/// Renders the templatable leaves of `config` in place.
pub fn render_config(schema: &Value, config: &mut Value, ctx: &Value) -> Result<(), RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    let mut failure = None;
    visit_strings(schema, config, &mut |pointer, marks, text| {
        if !marks.templatable || marks.secret || failure.is_some() || !text.contains(['{', '%']) {
            return;
        }
        match env.render_str(text, minijinja::value::Serde(ctx)) {
            Ok(rendered) => *text = rendered,
            Err(e) => {
                failure = Some(RenderError {
                    pointer: pointer.to_string(),
                    message: e.to_string(),
                })
            }
        }
    });
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_templatable_leaves_only_and_undefined_is_empty() {
        let schema = json!({"properties": {
            "url": {"type": "string", "x-templatable": true},
            "raw": {"type": "string"}
        }});
        let mut config = json!({
            "url": "{{ environment.baseUrl }}/h?x={{ environment.nope }}&y={{ environment.x.y }}&z={{ nothing.at.all }}",
            "raw": "{{ keep }}"
        });
        let ctx = json!({"environment": {"baseUrl": "http://s"}});
        render_config(&schema, &mut config, &ctx).unwrap();
        assert_eq!(
            config,
            json!({"url": "http://s/h?x=&y=&z=", "raw": "{{ keep }}"})
        );
    }

    #[test]
    fn template_errors_name_the_field() {
        let schema = json!({"properties": {"url": {"type": "string", "x-templatable": true}}});
        let mut config = json!({"url": "{{ broken"});
        let err = render_config(&schema, &mut config, &json!({})).unwrap_err();
        assert_eq!(err.pointer, "/url");
    }
}
