import assert from "node:assert/strict";
import { test } from "node:test";

import { parseConfig, summarize } from "./check.js";

test("an unexpected status is down, not an error", () => {
  assert.deepEqual(summarize(503, 200), { statusCode: 503, up: false });
});

test("the expected status defaults to 200", () => {
  assert.equal(parseConfig('{"url": "/health"}').expectStatus, 200);
});

test("a config without url is refused", () => {
  assert.throws(() => parseConfig("{}"), /url/);
});
