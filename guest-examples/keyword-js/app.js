// The `keyword` collector, in JavaScript: fetch a page over the `http`
// strategy's transport and report whether it contains a keyword or matches
// a pattern, like a keyword monitor.
//
// Built with componentize-js against ../../wit (world `collector`).

import { exec } from "checkhost:plugin/transport@1.0.0";
import { log } from "checkhost:plugin/log@1.0.0";

const CONFIG_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  title: "KeywordConfig",
  type: "object",
  additionalProperties: false,
  required: ["url"],
  properties: {
    url: {
      type: "string",
      "x-templatable": true,
      description: "Absolute URL, or a path relative to the strategy's baseUrl.",
    },
    keyword: {
      type: "string",
      "x-templatable": true,
      description: "Text the page must contain.",
    },
    pattern: {
      type: "string",
      description: "A JavaScript regular expression the page must match.",
    },
    caseSensitive: { type: "boolean", default: true },
  },
};

const RESULT_SCHEMA = {
  type: "object",
  properties: {
    statusCode: { type: "integer" },
    found: { type: "boolean", description: "The keyword and the pattern, when given, were found." },
    matches: { type: "integer", description: "How many times the keyword (or pattern) occurs." },
    match: { type: ["string", "null"], description: "The first text the pattern matched." },
    bodyBytes: { type: "integer" },
  },
};

function describeError(err) {
  const e = err && err.payload !== undefined ? err.payload : err;
  if (e && typeof e === "object" && "tag" in e) {
    return `${e.tag}: ${e.val}`;
  }
  return String(e);
}

function output(result, error) {
  return { resultJson: JSON.stringify(result), error };
}

function countOccurrences(text, needle) {
  if (needle.length === 0) {
    return 0;
  }
  let count = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) {
    count += 1;
  }
  return count;
}

export const collectorPlugin = {
  describe() {
    return {
      id: "keyword",
      displayName: "Keyword",
      description: "Whether a page served over HTTP contains a keyword or matches a pattern",
      strategies: ["http"],
      allowMultiple: true,
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
      config = JSON.parse(configJson);
    } catch (e) {
      return output({}, `bad config: ${e.message}`);
    }
    if (typeof config.url !== "string") {
      return output({}, "bad config: `url` is required");
    }
    if (config.keyword === undefined && config.pattern === undefined) {
      return output({}, "bad config: give `keyword`, `pattern` or both");
    }
    let regex = null;
    if (config.pattern !== undefined) {
      try {
        regex = new RegExp(config.pattern, config.caseSensitive === false ? "gi" : "g");
      } catch (e) {
        return output({}, `bad config: pattern: ${e.message}`);
      }
    }
    let response;
    try {
      response = exec({ method: "GET", target: config.url, headers: [], body: new Uint8Array(), timeoutMs: undefined });
    } catch (e) {
      return output({}, describeError(e));
    }
    const body = new TextDecoder().decode(response.body);
    const fold = (s) => (config.caseSensitive === false ? s.toLowerCase() : s);
    let found = true;
    let matches = 0;
    let match = null;
    if (config.keyword !== undefined) {
      matches = countOccurrences(fold(body), fold(config.keyword));
      found = matches > 0;
    }
    if (regex !== null) {
      const all = [...body.matchAll(regex)];
      match = all.length > 0 ? all[0][0] : null;
      if (config.keyword === undefined) {
        matches = all.length;
      }
      found = found && all.length > 0;
    }
    log("debug", `check ${ctx.check.id}: ${config.url} found=${found}`);
    return output({ statusCode: response.status, found, matches, match, bodyBytes: response.body.length }, undefined);
  },
};
