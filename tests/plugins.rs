//! The plugin contract end to end: every example guest loaded by the real
//! runtime, described, migrated, connected and collected against real local
//! servers; transport failures come back as errors, answers as metrics.

mod support;

use serde_json::json;
use support::{Probe, checkhost, guest, load, runtime, servers};

const STRATEGIES: &[(&str, &str)] = &[
    ("http", "http"),
    ("tcp", "tcp"),
    ("dns", "dns"),
    ("tls", "tls"),
];
const COLLECTORS: &[(&str, &str)] = &[
    ("http-request", "request"),
    ("tcp-banner", "banner"),
    ("dns-lookup", "lookup"),
    ("tls-certificate", "certificate"),
    ("json-field-py", "json-field"),
    ("readme-collector", "up"),
];

/// `initial memory:  12.4 MiB (…)` → 12.4
fn initial_memory_mib(inspect: &str) -> f64 {
    inspect
        .lines()
        .find_map(|l| l.strip_prefix("initial memory:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no initial memory line:\n{inspect}"))
}

#[test]
fn inspect_shows_the_world_every_guest_exports() {
    for (file, id) in STRATEGIES {
        let out = checkhost(&["plugin", "inspect", guest(file).to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("world:           checkhost:plugin/strategy@1.0.0"),
            "{text}"
        );
        assert!(text.contains(&format!("id:              {id}\n")), "{text}");
        let mib = initial_memory_mib(&text);
        assert!(mib > 0.0 && mib < 8.0, "a Rust guest starts small: {text}");
    }
    let python = checkhost(&[
        "plugin",
        "inspect",
        guest("json-field-py").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&python.stdout);
    assert!(
        initial_memory_mib(&text) >= 8.0,
        "CPython's image weighs its size: {text}"
    );
    for (file, id) in COLLECTORS {
        let out = checkhost(&["plugin", "inspect", "--json", guest(file).to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["world"], "checkhost:plugin/collector");
        assert_eq!(info["id"], *id);
        assert!(
            info["initialMemoryBytes"].as_u64().is_some_and(|b| b > 0),
            "{info}"
        );
        assert!(info["configSchema"].is_object());
    }
}

/// The shipped plugins mark what operators want charted, and `plugin
/// inspect` lists it: Rust guests through schemars attributes, the Python
/// one in its hand-written schema.
#[test]
fn shipped_plugins_mark_their_charted_fields() {
    let fields = |file: &str| -> Vec<String> {
        let out = checkhost(&["plugin", "inspect", "--json", guest(file).to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        info["resultFields"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no resultFields: {info}"))
            .iter()
            .map(|f| {
                format!(
                    "{} {} {} {}",
                    f["name"], f["aggregate"], f["chart"], f["unit"]
                )
                .replace('"', "")
            })
            .collect()
    };
    assert_eq!(
        fields("http-request"),
        [
            "bodyLength average line bytes",
            "responseTimeMs min-max line ms",
            "statusCode last bar null",
        ]
    );
    assert_eq!(
        fields("tls-certificate"),
        ["daysRemaining last gauge days", "valid rate boolean null"]
    );
    assert_eq!(
        fields("dns-lookup"),
        [
            "recordCount min-max bar null",
            "resolutionTimeMs min-max line ms"
        ]
    );
    assert_eq!(
        fields("json-field-py"),
        ["found rate boolean null", "statusCode last bar null"]
    );
    let service = fields("service");
    assert!(
        service.contains(&"responseTimeMs min-max line ms".to_string()),
        "{service:?}"
    );
}

#[tokio::test]
async fn describe_reports_schemas_with_host_marks() {
    let http = load("http").await;
    assert_eq!(http.info.config_version, 2);
    assert_eq!(
        http.info.config_schema["properties"]["baseUrl"]["x-templatable"],
        true
    );
    let request = load("http-request").await;
    assert_eq!(request.info.strategies, vec!["http".to_string()]);
    assert!(request.info.allow_multiple);
    assert_eq!(
        request.info.config_schema["properties"]["url"]["x-templatable"],
        true
    );
    assert!(request.info.result_schema["properties"]["statusCode"].is_object());
    let python = load("json-field-py").await;
    assert_eq!(python.info.strategies, vec!["http".to_string()]);
    assert_eq!(
        python.info.config_schema["properties"]["url"]["x-templatable"],
        true
    );
}

#[tokio::test]
async fn http_config_v1_migrates_to_v2_and_v2_is_unchanged() {
    let http = load("http").await;
    let v1 = json!({"url": "http://127.0.0.1:8080/", "method": "HEAD", "timeout": 2});
    let v2 = runtime().migrate(&http, &v1).await.unwrap();
    assert_eq!(
        v2,
        json!({"baseUrl": "http://127.0.0.1:8080/", "defaultMethod": "HEAD", "timeoutMs": 2000})
    );
    assert_eq!(runtime().migrate(&http, &v2).await.unwrap(), v2);
}

#[tokio::test]
async fn http_request_collects_status_body_and_headers() {
    let server = servers::http().await;
    let outcome = Probe::new("http", json!({"baseUrl": format!("http://{server}/")}))
        .await
        .collector(
            "http-request",
            json!({"url": "/ok", "headers": {"x-probe": "1"}}),
        )
        .await
        .collector("http-request", json!({"url": "/redirect"}))
        .await
        .run()
        .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let ok = &outcome.collectors[0].result;
    assert_eq!(ok["statusCode"], 200);
    assert_eq!(ok["statusText"], "OK");
    assert_eq!(ok["body"]["db"]["ok"], true);
    assert_eq!(ok["headers"]["content-type"], "application/json");
    assert!(ok["responseTimeMs"].as_f64().unwrap() > 0.0);
    let redirected = &outcome.collectors[1].result;
    assert_eq!(redirected["statusCode"], 200);
    assert_eq!(redirected["redirects"], 1);
}

#[tokio::test]
async fn a_500_is_a_metric_not_an_error() {
    let server = servers::http().await;
    let outcome = Probe::new("http", json!({}))
        .await
        .collector(
            "http-request",
            json!({"url": format!("http://{server}/fail")}),
        )
        .await
        .run()
        .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    assert_eq!(outcome.collectors[0].result["statusCode"], 500);
    assert_eq!(outcome.collectors[0].result["body"], "boom");
}

#[tokio::test]
async fn refused_http_connection_is_a_transport_error() {
    let outcome = Probe::new("http", json!({}))
        .await
        .collector("http-request", json!({"url": "http://127.0.0.1:1/"}))
        .await
        .run()
        .await;
    let error = outcome.collectors[0].error.as_deref().unwrap_or_default();
    assert!(error.starts_with("connection refused"), "{outcome:?}");
    assert_eq!(outcome.failure, None);
}

#[tokio::test]
async fn python_collector_rides_on_the_rust_http_strategy() {
    let server = servers::http().await;
    let outcome = Probe::new("http", json!({"baseUrl": format!("http://{server}/")}))
        .await
        .collector("json-field-py", json!({"url": "/ok", "field": "items.2"}))
        .await
        .collector(
            "json-field-py",
            json!({"url": "/ok", "field": "db.missing"}),
        )
        .await
        .run()
        .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    assert_eq!(
        outcome.collectors[0].result,
        json!({"statusCode": 200, "found": true, "value": 3, "valueType": "number"})
    );
    assert_eq!(outcome.collectors[1].result["found"], false);
    assert!(
        outcome
            .logs
            .iter()
            .any(|l| l.plugin == "json-field" && l.message.contains("items.2"))
    );
}

#[tokio::test]
async fn readme_collector_runs() {
    let server = servers::http().await;
    let outcome = Probe::new("http", json!({"baseUrl": format!("http://{server}/")}))
        .await
        .collector("readme-collector", json!({"path": "/ok"}))
        .await
        .run()
        .await;
    assert_eq!(
        outcome.collectors[0].result,
        json!({"up": true, "status": 200})
    );
}

#[test]
fn readme_collector_is_the_sdk_readme_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("sdk/README.md")).unwrap();
    let code = readme
        .split("```rust,ignore\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("sdk/README.md has a rust block");
    let source =
        std::fs::read_to_string(root.join("guest-examples/readme-collector/src/lib.rs")).unwrap();
    assert_eq!(
        code, source,
        "the README example and guest-examples/readme-collector differ"
    );
    assert!(
        code.lines().count() <= 30,
        "README collector is longer than 30 lines"
    );
}

#[tokio::test]
async fn tcp_banner_reads_the_greeting() {
    let server = servers::banner("SSH-2.0-checkhost-test\r\n").await;
    let outcome = Probe::new("tcp", json!({"host": "127.0.0.1", "port": server.port()}))
        .await
        .collector("tcp-banner", json!({}))
        .await
        .run()
        .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    assert_eq!(result["connected"], true);
    assert_eq!(result["banner"], "SSH-2.0-checkhost-test");
    assert!(result["connectMs"].is_number());
}

#[tokio::test]
async fn tcp_refused_is_a_connect_error() {
    let outcome = Probe::new("tcp", json!({"host": "127.0.0.1", "port": 1}))
        .await
        .collector("tcp-banner", json!({}))
        .await
        .run()
        .await;
    let error = outcome.connect_error.clone().unwrap_or_default();
    assert!(error.starts_with("connection refused"), "{outcome:?}");
}

#[tokio::test]
async fn dns_lookup_answers_each_record_type() {
    let server = servers::dns().await;
    let strategy = json!({"nameserver": server.to_string()});
    let outcome = Probe::new("dns", strategy)
        .await
        .collector("dns-lookup", json!({"hostname": "www.shop.test"}))
        .await
        .collector(
            "dns-lookup",
            json!({"hostname": "shop.test", "recordType": "MX"}),
        )
        .await
        .collector(
            "dns-lookup",
            json!({"hostname": "shop.test", "recordType": "TXT"}),
        )
        .await
        .collector(
            "dns-lookup",
            json!({"hostname": "shop.test", "recordType": "NS"}),
        )
        .await
        .collector(
            "dns-lookup",
            json!({"hostname": "shop.test", "recordType": "AAAA"}),
        )
        .await
        .run()
        .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let values = |i: usize| outcome.collectors[i].result["values"].clone();
    assert_eq!(values(0), json!(["10.0.0.1", "10.0.0.2"]));
    assert_eq!(outcome.collectors[0].result["recordCount"], 2);
    assert_eq!(values(1), json!(["10 mail.shop.test."]));
    assert_eq!(values(2), json!(["v=spf1 -all"]));
    assert_eq!(values(3), json!(["ns1.shop.test."]));
    assert_eq!(
        outcome.collectors[4].result["recordCount"], 0,
        "no records is a metric"
    );
}

#[tokio::test]
async fn nxdomain_is_a_transport_error() {
    let server = servers::dns().await;
    let outcome = Probe::new("dns", json!({"nameserver": server.to_string()}))
        .await
        .collector("dns-lookup", json!({"hostname": "nope.shop.test"}))
        .await
        .run()
        .await;
    let error = outcome.collectors[0].error.clone().unwrap_or_default();
    assert!(
        error.starts_with("dns failure") && error.contains("NXDOMAIN"),
        "{outcome:?}"
    );
}

/// The `tls` strategy with `config` and the `certificate` collector.
async fn certificate_run(config: serde_json::Value) -> checkhost::runtime::RunOutcome {
    Probe::new("tls", config)
        .await
        .collector("tls-certificate", json!({}))
        .await
        .run()
        .await
}

#[tokio::test]
async fn tls_certificate_reports_validity() {
    let server = servers::tls(false).await;
    let config = json!({"host": "127.0.0.1", "port": server.port(), "servername": "localhost"});
    let outcome = certificate_run(config).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let cert = &outcome.collectors[0].result;
    assert_eq!(cert["subject"], "CN=checkhost test");
    assert_eq!(cert["selfSigned"], true);
    assert_eq!(cert["valid"], true);
    assert_eq!(cert["validTo"], "2099-01-01T00:00:00Z");
    assert!(cert["daysRemaining"].as_i64().unwrap() > 365 * 50);
    assert_eq!(cert["chainLength"], 1);
    // Offered both, the server picks the newest.
    assert_eq!(cert["protocol"], "TLSv1.3", "{cert}");
    assert!(cert["handshakeMs"].as_f64().unwrap() > 0.0, "{cert}");
}

#[tokio::test]
async fn a_tls13_only_server_completes_a_tls13_handshake() {
    use tokio_rustls::rustls::version::TLS13;
    let server = servers::tls_with(false, &[&TLS13]).await;
    let config = json!({
        "host": "127.0.0.1", "port": server.port(), "servername": "localhost",
        "minVersion": "1.3", "alpn": ["h2", "http/1.1"]
    });
    let outcome = certificate_run(config).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let cert = &outcome.collectors[0].result;
    assert_eq!(cert["protocol"], "TLSv1.3", "{cert}");
    let cipher = cert["cipher"].as_str().unwrap();
    assert!(
        [
            "TLS13_AES_128_GCM_SHA256",
            "TLS13_AES_256_GCM_SHA384",
            "TLS13_CHACHA20_POLY1305_SHA256"
        ]
        .contains(&cipher),
        "{cert}"
    );
    assert_eq!(cert["alpn"], "h2", "{cert}");
    assert_eq!(cert["sni"], "localhost", "{cert}");
    // The certificate travels encrypted in TLS 1.3 and is still read.
    assert_eq!(cert["subject"], "CN=checkhost test");
    assert_eq!(cert["validTo"], "2099-01-01T00:00:00Z");
}

#[tokio::test]
async fn a_tls12_only_server_completes_a_tls12_handshake() {
    use tokio_rustls::rustls::version::TLS12;
    let server = servers::tls_with(false, &[&TLS12]).await;
    let config = json!({"host": "127.0.0.1", "port": server.port(), "servername": "localhost"});
    let outcome = certificate_run(config).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let cert = &outcome.collectors[0].result;
    assert_eq!(cert["protocol"], "TLSv1.2", "{cert}");
    let cipher = cert["cipher"].as_str().unwrap();
    // The test certificate has an ECDSA key.
    assert!(cipher.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{cert}");
    assert_eq!(cert["alpn"], json!(null), "no ALPN offered: {cert}");
    assert_eq!(cert["subject"], "CN=checkhost test");
}

#[tokio::test]
async fn a_version_the_server_does_not_speak_is_a_tls_error_naming_the_alert() {
    use tokio_rustls::rustls::version::TLS13;
    let server = servers::tls_with(false, &[&TLS13]).await;
    let config = json!({"host": "127.0.0.1", "port": server.port(), "maxVersion": "1.2"});
    let outcome = certificate_run(config).await;
    assert_eq!(
        outcome.connect_error.as_deref(),
        Some(
            "tls failure: server sent alert protocol_version \
             (the server accepts none of the offered versions: TLS 1.2)"
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_self_signed_certificate_is_untrusted_but_not_an_error() {
    let server = servers::tls(false).await;
    let config = json!({"host": "127.0.0.1", "port": server.port(), "servername": "localhost"});
    let outcome = certificate_run(config).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let cert = &outcome.collectors[0].result;
    assert_eq!(cert["trusted"], false, "{cert}");
    assert_eq!(
        cert["verifyError"], "invalid peer certificate: UnknownIssuer",
        "{cert}"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_a_metric_not_an_error() {
    let server = servers::tls(true).await;
    let outcome = certificate_run(json!({"host": "127.0.0.1", "port": server.port()})).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let cert = &outcome.collectors[0].result;
    assert_eq!(cert["valid"], false);
    assert_eq!(cert["validTo"], "2021-01-01T00:00:00Z");
    assert!(cert["daysRemaining"].as_i64().unwrap() < 0);
    assert_eq!(cert["trusted"], false, "{cert}");
    assert_eq!(
        cert["sni"],
        json!(null),
        "an IP address sends no SNI: {cert}"
    );
}

#[tokio::test]
async fn tls_handshake_with_a_non_tls_server_is_a_transport_error() {
    let server = servers::banner("220 plain smtp, no tls here\r\n").await;
    let outcome = certificate_run(json!({"host": "127.0.0.1", "port": server.port()})).await;
    assert_eq!(
        outcome.connect_error.as_deref(),
        Some(
            "tls failure: not a TLS server: expected a TLS record, \
             got \"220 plain smtp, no tls here\\r\\n\""
        ),
        "{outcome:?}"
    );
}

#[test]
fn plugin_test_command_runs_a_strategy_and_collector() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(servers::http());
    let config = json!({
        "strategy": {"url": format!("http://{server}/"), "timeout": 5},
        "collector": {"url": "/ok"}
    })
    .to_string();
    let out = checkhost(&[
        "plugin",
        "test",
        guest("http").to_str().unwrap(),
        "--collector",
        guest("http-request").to_str().unwrap(),
        "--config",
        &config,
        "--allow",
        "127.0.0.1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["collectors"][0]["result"]["statusCode"], 200);

    let refused = json!({"strategy": {}, "collector": {"url": "http://127.0.0.1:1/"}}).to_string();
    let out = checkhost(&[
        "plugin",
        "test",
        guest("http").to_str().unwrap(),
        "--collector",
        guest("http-request").to_str().unwrap(),
        "--config",
        &refused,
        "--allow",
        "127.0.0.1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("connection refused"));
    drop(rt);
}

/// Debian's docker-registry on a free loopback port, storing in `dir`.
struct Registry {
    child: std::process::Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn registry(dir: &std::path::Path) -> Option<Registry> {
    let program = std::path::Path::new("/usr/bin/docker-registry");
    if !program.exists() {
        let message = "SKIPPED: docker-registry missing: run scripts/install-test-tools";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("\n==================== {message} ====================\n");
        return None;
    }
    let port = support::daemon::free_port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.join("blobs").display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(program)
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let registry = Registry { child, port };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let up = client
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return Some(registry);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("docker-registry did not answer on 127.0.0.1:{port}");
}

/// Pushes `bytes` as a Wasm OCI artifact (one `application/wasm` layer).
async fn push(port: u16, repository: &str, bytes: Vec<u8>) {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    });
    let reference: oci_client::Reference =
        format!("127.0.0.1:{port}/{repository}").parse().unwrap();
    client
        .push(
            &reference,
            &[ImageLayer::new(bytes, "application/wasm".into(), None)],
            Config::new(
                b"{}".to_vec(),
                "application/vnd.wasm.config.v0+json".into(),
                None,
            ),
            &oci_client::secrets::RegistryAuth::Anonymous,
            None,
        )
        .await
        .unwrap();
}

/// `plugin pull` through a registry on loopback: the component lands in
/// the plugin folder under the repository's name and is pinned in the
/// lock with its source; a layer that is not a plugin is refused and
/// nothing is written; a plugin whose id another file provides is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_pull_fetches_a_component_from_a_loopback_registry() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(registry) = registry(scratch.path()).await else {
        return;
    };
    let component = std::fs::read(guest("http-request")).unwrap();
    push(
        registry.port,
        "checkhost/http-request:1.0",
        component.clone(),
    )
    .await;
    push(
        registry.port,
        "checkhost/not-a-plugin:1.0",
        b"\0asm not really".to_vec(),
    )
    .await;

    let ws = tempfile::tempdir().unwrap();
    let plugins = ws.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(guest("http"), plugins.join("http.wasm")).unwrap();
    let config = ws.path().join("checkhost.yaml");
    std::fs::write(
        &config,
        "checks:\n  - {id: web, strategy: {plugin: http, config: {baseUrl: \"http://127.0.0.1:9\"}}, \
         network: {allow: [\"127.0.0.1:9\"]}}\nsystems: [{id: shop}]\nassignments: [{system: shop, check: web}]\n",
    )
    .unwrap();
    let cli = support::checkhost_text::<&str>;
    let config_arg = config.to_str().unwrap();
    let plugins_arg = plugins.to_str().unwrap();
    let (code, output) = cli(&["plugin", "lock", config_arg, "--plugins", plugins_arg]);
    assert_eq!(code, Some(0), "{output}");

    let reference = format!(
        "oci://127.0.0.1:{}/checkhost/http-request:1.0",
        registry.port
    );
    let (code, output) = cli(&[
        "plugin",
        "pull",
        &reference,
        config_arg,
        "--plugins",
        plugins_arg,
    ]);
    assert_eq!(code, Some(0), "{output}");
    let pulled = std::fs::read(plugins.join("http-request.wasm")).unwrap();
    assert_eq!(pulled, component, "the very bytes pushed");
    let digest = checkhost::runtime::ComponentDigest::of(&component).to_string();
    assert!(
        output.contains(&digest) && output.contains("collector `request`"),
        "{output}"
    );
    let lock = std::fs::read_to_string(ws.path().join("checkhost.lock")).unwrap();
    assert!(
        lock.contains("file: http-request.wasm")
            && lock.contains(&digest)
            && lock.contains(&reference),
        "pinned with its source:\n{lock}"
    );

    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(&plugins)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let bad = format!(
        "oci://127.0.0.1:{}/checkhost/not-a-plugin:1.0",
        registry.port
    );
    let (code, output) = cli(&["plugin", "pull", &bad, config_arg, "--plugins", plugins_arg]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("not a checkhost plugin"), "{output}");
    assert_eq!(
        files(),
        ["http-request.wasm", "http.wasm"],
        "nothing written"
    );

    let (code, output) = cli(&[
        "plugin",
        "pull",
        &reference,
        config_arg,
        "--plugins",
        plugins_arg,
        "--name",
        "request-copy",
    ]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("already provides"), "{output}");
    assert_eq!(
        files(),
        ["http-request.wasm", "http.wasm"],
        "nothing written"
    );

    // A lock that cannot be read stops the pull before the folder changes.
    let good_lock = std::fs::read_to_string(ws.path().join("checkhost.lock")).unwrap();
    std::fs::write(
        ws.path().join("checkhost.lock"),
        good_lock.replace("version: 1", "version: 9"),
    )
    .unwrap();
    let (code, output) = cli(&[
        "plugin",
        "pull",
        &reference,
        config_arg,
        "--plugins",
        plugins_arg,
        "--name",
        "again",
    ]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("lock version 9"), "{output}");
    assert_eq!(
        files(),
        ["http-request.wasm", "http.wasm"],
        "nothing written"
    );

    let missing = format!("oci://127.0.0.1:{}/checkhost/absent:1.0", registry.port);
    let (code, output) = cli(&[
        "plugin",
        "pull",
        &missing,
        config_arg,
        "--plugins",
        plugins_arg,
    ]);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains(&missing),
        "the error names the reference: {output}"
    );
}
