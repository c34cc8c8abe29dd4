// The `{{name}}` collector: fetches a URL over the `http` strategy and
// reports its status and whether it is the one expected.
//
// Build it with `checkhost plugin build`; the logic it tests lives in check.js.

import { exec } from "checkhost:plugin/transport@1.0.0";
import { CONFIG_SCHEMA, RESULT_SCHEMA, parseConfig, summarize } from "./check.js";

export const collectorPlugin = {
  describe() {
    return {
      id: "{{name}}",
      displayName: "{{name}}",
      description: "Whether a URL answers with the expected status",
      strategies: ["http"],
      allowMultiple: false,
      configSchema: JSON.stringify(CONFIG_SCHEMA),
      configVersion: 1,
      resultSchema: JSON.stringify(RESULT_SCHEMA),
    };
  },

  migrate(fromVersion, configJson) {
    return configJson;
  },

  collect(configJson, ctx) {
    let config;
    try {
      config = parseConfig(configJson);
    } catch (e) {
      return { resultJson: "{}", error: `bad config: ${e.message}` };
    }
    let response;
    try {
      response = exec({ method: "GET", target: config.url, headers: [], body: new Uint8Array(), timeoutMs: undefined });
    } catch (e) {
      const err = e.payload ?? e;
      return { resultJson: "{}", error: `${err.tag ?? "error"}: ${err.val ?? err}` };
    }
    return { resultJson: JSON.stringify(summarize(response.status, config.expectStatus)), error: undefined };
  },
};
