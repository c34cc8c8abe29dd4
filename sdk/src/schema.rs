use schemars::JsonSchema;

/// The JSON Schema of `T`, as the JSON text a plugin's `describe` returns.
pub fn schema_json<T: JsonSchema>() -> String {
    serde_json::to_string(&schemars::schema_for!(T)).unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Probe {
        #[schemars(extend("x-templatable" = true))]
        url: String,
        #[schemars(extend("x-secret" = true))]
        token: Option<String>,
    }

    #[test]
    fn marks_survive_into_the_schema() {
        let schema: serde_json::Value = serde_json::from_str(&schema_json::<Probe>()).unwrap();
        assert_eq!(schema["properties"]["url"]["x-templatable"], true);
        assert_eq!(schema["properties"]["token"]["x-secret"], true);
    }
}
