// What the `{{name}}` strategy decides, free of the component imports so
// that `node --test` can test it.

export const DEFAULT_TIMEOUT_MS = 5000;

export const CONFIG_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  additionalProperties: false,
  required: ["host", "port"],
  properties: {
    host: { type: "string", "x-templatable": true, description: "Name or IP address of the target." },
    port: { type: "integer", minimum: 1, maximum: 65535 },
    timeoutMs: {
      type: "integer",
      minimum: 1,
      default: DEFAULT_TIMEOUT_MS,
      description: "Name lookup and connect timeout.",
    },
  },
};

export const RESULT_SCHEMA = {
  type: "object",
  properties: {
    status: { type: "integer", description: "0: connected" },
    statusText: { type: "string" },
    timings: {
      type: "object",
      properties: { dnsMs: { type: "number" }, connectMs: { type: "number" } },
    },
  },
};

// Requests `exec` answers; anything else is a protocol error.
export const METHODS = ["CONNECT", "PING"];

// wasi:sockets error codes that are not `other`.
const FAILURE_KINDS = {
  "connection-refused": "refused",
  "connection-reset": "refused",
  timeout: "timeout",
  "access-denied": "denied",
  "name-unresolvable": "dns",
  "temporary-resolver-failure": "dns",
  "permanent-resolver-failure": "dns",
};

// The config with defaults filled in; throws naming the field that is wrong.
export function parseConfig(configJson) {
  const config = JSON.parse(configJson);
  if (typeof config !== "object" || config === null) {
    throw new Error("config must be an object");
  }
  const { host, port, timeoutMs = DEFAULT_TIMEOUT_MS } = config;
  if (typeof host !== "string" || host === "") {
    throw new Error("`host` must be a non-empty string");
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error("`port` must be an integer from 1 to 65535");
  }
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
    throw new Error("`timeoutMs` must be a positive integer");
  }
  return { host, port, timeoutMs };
}

// The transport error for a wasi:sockets error code, e.g.
// {tag: "refused", val: "connect to db:5432: connection refused"}.
export function failure(code, what) {
  return { tag: FAILURE_KINDS[code] ?? "other", val: `${what}: ${code.replaceAll("-", " ")}` };
}

// {status, statusText} for a request; throws for a method this strategy
// does not speak.
export function answer(method) {
  if (!METHODS.includes(method.toUpperCase())) {
    throw new Error(`method \`${method}\` is not supported; use ${METHODS.join(" or ")}`);
  }
  return { status: 0, statusText: "connected" };
}
