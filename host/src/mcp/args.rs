//! Tool arguments read with the path of the field at fault: the SDK's own
//! reader says only what was wrong, not where, and an assistant needs the
//! where to mend its call.

use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::ToolCallContext;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// A tool's arguments as `P`. Named as the SDK's wrapper is, so its tool
/// macro finds the input schema here.
pub struct Parameters<P>(pub P);

impl<P: JsonSchema> JsonSchema for Parameters<P> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        P::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        P::json_schema(generator)
    }
}

impl<S, P: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<P> {
    fn from_context_part(context: &mut ToolCallContext<S>) -> Result<Self, rmcp::ErrorData> {
        let arguments = serde_json::Value::Object(context.arguments.take().unwrap_or_default());
        read(arguments).map(Parameters)
    }
}

/// `arguments.collectors[0].assertions: invalid type: …`.
pub fn read<P: DeserializeOwned>(arguments: serde_json::Value) -> Result<P, rmcp::ErrorData> {
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        let place = if path == "." {
            "arguments".to_string()
        } else {
            format!("arguments.{path}")
        };
        rmcp::ErrorData::invalid_params(format!("{place}: {}", e.into_inner()), None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        items: Vec<Inner>,
    }

    #[test]
    fn a_wrong_argument_is_named_by_its_path() {
        let error = read::<Outer>(serde_json::json!({"items": [{"count": 1}, {"count": "x"}]}))
            .unwrap_err();
        assert!(
            error
                .message
                .starts_with("arguments.items[1].count: invalid type"),
            "{}",
            error.message
        );
    }
}
