// The `header` collector, in C: fetch a URL over the `http` strategy's
// transport and report one response header (presence, value, count).
//
// Built by scripts/build-guests: wit-bindgen's C generator writes the
// bindings for world `collector`, zig's clang compiles them for wasm32, and
// `wasm-tools component new` wraps the module. Each run gets a fresh
// instance, so memory is simply released when the run ends.

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "collector.h"

static const char CONFIG_SCHEMA[] =
    "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","
    "\"title\":\"HeaderConfig\",\"type\":\"object\",\"additionalProperties\":false,"
    "\"required\":[\"url\",\"header\"],\"properties\":{"
    "\"url\":{\"type\":\"string\",\"x-templatable\":true,"
    "\"description\":\"Absolute URL, or a path relative to the strategy's baseUrl.\"},"
    "\"header\":{\"type\":\"string\",\"description\":\"Response header name, any case.\"},"
    "\"method\":{\"type\":\"string\",\"enum\":[\"GET\",\"HEAD\"],\"default\":\"GET\"}}}";

static const char RESULT_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"statusCode\":{\"type\":\"integer\"},"
    "\"present\":{\"type\":\"boolean\"},"
    "\"value\":{\"type\":[\"string\",\"null\"],\"description\":\"The first value.\"},"
    "\"count\":{\"type\":\"integer\",\"description\":\"How many times the header came.\"}}}";

// Longest config string value accepted (URLs, header names).
#define MAX_VALUE 4096

// Out of memory is a trap, never a write through NULL (address 0 is valid
// linear memory in wasm).
static void *must_alloc(size_t size) {
  void *p = malloc(size);
  if (p == NULL) {
    abort();
  }
  return p;
}

// A cursor over the config JSON; `end` is one past the last byte.
typedef struct {
  const char *at;
  const char *end;
} cursor_t;

static void skip_space(cursor_t *c) {
  while (c->at < c->end && (*c->at == ' ' || *c->at == '\n' || *c->at == '\r' || *c->at == '\t')) {
    c->at++;
  }
}

// Reads a JSON string into `out` (NUL-terminated). Escapes other than the
// two-character ones are refused rather than guessed.
static bool read_string(cursor_t *c, char *out, size_t cap) {
  size_t len = 0;
  if (c->at >= c->end || *c->at != '"') {
    return false;
  }
  c->at++;
  while (c->at < c->end && *c->at != '"') {
    char ch = *c->at++;
    if (ch == '\\') {
      if (c->at >= c->end) {
        return false;
      }
      char esc = *c->at++;
      switch (esc) {
        case '"': case '\\': case '/': ch = esc; break;
        case 'n': ch = '\n'; break;
        case 't': ch = '\t'; break;
        case 'r': ch = '\r'; break;
        default: return false;
      }
    }
    if (len + 1 >= cap) {
      return false;
    }
    if (out != NULL) {
      out[len] = ch;
    }
    len++;
  }
  if (c->at >= c->end) {
    return false;
  }
  c->at++;
  if (out != NULL) {
    out[len] = '\0';
  }
  return true;
}

// Skips any JSON value: strings, and nested objects or arrays by depth.
static bool skip_value(cursor_t *c) {
  int depth = 0;
  do {
    skip_space(c);
    if (c->at >= c->end) {
      return false;
    }
    char ch = *c->at;
    if (ch == '"') {
      if (!read_string(c, NULL, (size_t)-1)) {
        return false;
      }
    } else if (ch == '{' || ch == '[') {
      depth++;
      c->at++;
    } else if (ch == '}' || ch == ']') {
      depth--;
      c->at++;
    } else {
      c->at++;
    }
  } while (depth > 0);
  return depth == 0;
}

typedef struct {
  char url[MAX_VALUE];
  char header[MAX_VALUE];
  char method[8];
} config_t;

// Parses the top-level object; returns NULL or a message naming the problem.
static const char *parse_config(const collector_string_t *json, config_t *config) {
  cursor_t c = {(const char *)json->ptr, (const char *)json->ptr + json->len};
  char key[64];
  strcpy(config->method, "GET");
  config->url[0] = config->header[0] = '\0';
  skip_space(&c);
  if (c.at >= c.end || *c.at++ != '{') {
    return "bad config: expected a JSON object";
  }
  for (;;) {
    skip_space(&c);
    if (c.at < c.end && *c.at == '}') {
      break;
    }
    if (!read_string(&c, key, sizeof key)) {
      return "bad config: expected a field name";
    }
    skip_space(&c);
    if (c.at >= c.end || *c.at++ != ':') {
      return "bad config: expected `:`";
    }
    skip_space(&c);
    bool ok;
    if (strcmp(key, "url") == 0) {
      ok = read_string(&c, config->url, sizeof config->url);
    } else if (strcmp(key, "header") == 0) {
      ok = read_string(&c, config->header, sizeof config->header);
    } else if (strcmp(key, "method") == 0) {
      ok = read_string(&c, config->method, sizeof config->method);
    } else {
      ok = skip_value(&c);
    }
    if (!ok) {
      return "bad config: a value is malformed or too long";
    }
    skip_space(&c);
    if (c.at < c.end && *c.at == ',') {
      c.at++;
    }
  }
  if (config->url[0] == '\0' || config->header[0] == '\0') {
    return "bad config: `url` and `header` are required";
  }
  return NULL;
}

// Appends `s` (length `len`) to `out` as a JSON string literal.
static char *append_json_string(char *out, const uint8_t *s, size_t len) {
  *out++ = '"';
  for (size_t i = 0; i < len; i++) {
    uint8_t ch = s[i];
    if (ch == '"' || ch == '\\') {
      *out++ = '\\';
      *out++ = (char)ch;
    } else if (ch < 0x20) {
      out += sprintf(out, "\\u%04x", ch);
    } else {
      *out++ = (char)ch;
    }
  }
  *out++ = '"';
  return out;
}

static void fail(collector_string_t *error_out, const char *prefix, const collector_string_t *detail) {
  size_t prefix_len = strlen(prefix);
  size_t detail_len = detail ? detail->len : 0;
  char *message = must_alloc(prefix_len + detail_len + 1);
  memcpy(message, prefix, prefix_len);
  if (detail_len) {
    memcpy(message + prefix_len, detail->ptr, detail_len);
  }
  collector_string_dup_n(error_out, message, prefix_len + detail_len);
  free(message);
}

static const char *ERROR_KINDS[] = {"refused", "dns", "tls", "timeout",
                                    "protocol", "bad-config", "denied", "other"};

void exports_checkhost_plugin_collector_plugin_describe(
    exports_checkhost_plugin_collector_plugin_collector_info_t *ret) {
  collector_string_dup(&ret->id, "header");
  collector_string_dup(&ret->display_name, "Response header");
  collector_string_dup(&ret->description, "Whether a response carries a header, and its value");
  ret->strategies.len = 1;
  ret->strategies.ptr = must_alloc(sizeof(collector_string_t));
  collector_string_dup(&ret->strategies.ptr[0], "http");
  ret->allow_multiple = true;
  collector_string_dup(&ret->config_schema, CONFIG_SCHEMA);
  ret->config_version = 1;
  collector_string_dup(&ret->result_schema, RESULT_SCHEMA);
}

bool exports_checkhost_plugin_collector_plugin_migrate(uint32_t from_version,
                                                       collector_string_t *config_json,
                                                       collector_string_t *ret,
                                                       collector_string_t *err) {
  (void)from_version;
  (void)err;
  collector_string_dup_n(ret, (const char *)config_json->ptr, config_json->len);
  collector_string_free(config_json);
  return true;
}

void exports_checkhost_plugin_collector_plugin_collect(
    collector_string_t *config_json, exports_checkhost_plugin_collector_plugin_run_context_t *ctx,
    exports_checkhost_plugin_collector_plugin_collector_output_t *ret) {
  static config_t config;
  // The generated caller leaves `ret` uninitialised; `error.is_some` must
  // be false on success.
  memset(ret, 0, sizeof *ret);
  const char *problem = parse_config(config_json, &config);
  collector_string_free(config_json);
  exports_checkhost_plugin_collector_plugin_run_context_free(ctx);
  collector_string_dup(&ret->result_json, "{}");
  if (problem != NULL) {
    ret->error.is_some = true;
    collector_string_dup(&ret->error.val, problem);
    return;
  }

  checkhost_plugin_transport_request_t request = {0};
  collector_string_set(&request.method, config.method);
  collector_string_set(&request.target, config.url);
  checkhost_plugin_transport_response_t response;
  checkhost_plugin_transport_transport_error_t error;
  if (!checkhost_plugin_transport_exec(&request, &response, &error)) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s: ", error.tag < 8 ? ERROR_KINDS[error.tag] : "other");
    ret->error.is_some = true;
    // Every case of the error variant carries a string at the same place.
    fail(&ret->error.val, prefix, &error.val.other);
    checkhost_plugin_types_transport_error_free(&error);
    return;
  }

  size_t count = 0;
  const collector_string_t *value = NULL;
  size_t name_len = strlen(config.header);
  for (size_t i = 0; i < response.headers.len; i++) {
    const collector_string_t *name = &response.headers.ptr[i].f0;
    if (name->len == name_len && strncasecmp((const char *)name->ptr, config.header, name_len) == 0) {
      if (value == NULL) {
        value = &response.headers.ptr[i].f1;
      }
      count++;
    }
  }

  // Escaping can grow each byte to six (\u00XX); the rest is fixed text.
  char *json = must_alloc(128 + (value ? value->len * 6 : 0));
  char *out = json + sprintf(json, "{\"statusCode\":%u,\"present\":%s,\"count\":%zu,\"value\":",
                             (unsigned)response.status, count ? "true" : "false", count);
  if (value != NULL) {
    out = append_json_string(out, value->ptr, value->len);
  } else {
    out += sprintf(out, "null");
  }
  *out++ = '}';
  collector_string_free(&ret->result_json);
  collector_string_dup_n(&ret->result_json, json, (size_t)(out - json));
  free(json);

  collector_string_t line;
  collector_string_set(&line, count ? "header found" : "header missing");
  checkhost_plugin_log_log(CHECKHOST_PLUGIN_TYPES_LOG_LEVEL_DEBUG, &line);
  checkhost_plugin_types_response_free(&response);
}
