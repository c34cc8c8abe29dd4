// What the `{{name}}` collector measures, free of the component imports so
// that `node --test` can test it.

export const CONFIG_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  additionalProperties: false,
  required: ["url"],
  properties: {
    url: {
      type: "string",
      "x-templatable": true,
      description: "Absolute URL, or a path relative to the strategy's baseUrl.",
    },
    expectStatus: { type: "integer", default: 200 },
  },
};

export const RESULT_SCHEMA = {
  type: "object",
  properties: {
    statusCode: { type: "integer" },
    up: { type: "boolean" },
  },
};

// The config with defaults filled in; throws naming what is wrong.
export function parseConfig(configJson) {
  const config = JSON.parse(configJson);
  if (typeof config.url !== "string") {
    throw new Error("`url` is required");
  }
  return { expectStatus: 200, ...config };
}

// Everything the target answered is a metric; assertions judge it.
export function summarize(status, expectStatus) {
  return { statusCode: status, up: status === expectStatus };
}
