import assert from "node:assert/strict";
import { test } from "node:test";

import { CONFIG_SCHEMA, answer, failure, parseConfig } from "./check.js";

test("the timeout defaults and the host is rendered per environment", () => {
  assert.deepEqual(parseConfig('{"host": "db", "port": 5432}'), { host: "db", port: 5432, timeoutMs: 5000 });
  assert.equal(CONFIG_SCHEMA.properties.host["x-templatable"], true);
});

test("a bad port is named", () => {
  for (const port of ["0", "65536", '"80"', "1.5"]) {
    assert.throws(() => parseConfig(`{"host": "db", "port": ${port}}`), /`port`/);
  }
});

test("a refused connection names the target", () => {
  assert.deepEqual(failure("connection-refused", "connect to db:5432"), {
    tag: "refused",
    val: "connect to db:5432: connection refused",
  });
  assert.equal(failure("remote-unreachable", "x").tag, "other");
});

test("exec answers CONNECT and PING only", () => {
  assert.deepEqual(answer("ping"), { status: 0, statusText: "connected" });
  assert.throws(() => answer("GET"), /`GET`/);
});
