//! A real MCP client (tests/mcp_client.py on the official Python SDK, in
//! the venv of scripts/install-test-tools), driven one request at a time.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

pub struct Client {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<std::path::PathBuf> {
    let python = super::target_dir().join("test-tools/venv/bin/python");
    let has_sdk = Command::new(&python)
        .args(["-c", "import mcp"])
        .status()
        .is_ok_and(|s| s.success());
    if has_sdk {
        return Some(python);
    }
    let missing = format!("{} with the mcp SDK is missing", python.display());
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {missing}");
    }
    eprintln!("\n!!! SKIPPED: {missing}: run scripts/install-test-tools !!!\n");
    None
}

impl Client {
    /// `checkhost mcp ARGS…` over stdio; `None` (loudly) without the SDK,
    /// except under `CI=true`.
    pub fn stdio(args: &[&str], env: &[(&str, &str)]) -> Option<Client> {
        let mut command = Command::new(python()?);
        command
            .arg(script())
            .arg("stdio")
            .arg(env!("CARGO_BIN_EXE_checkhost"))
            .arg("mcp")
            .args(args)
            .env("CHECKHOST_CACHE_DIR", super::cache_dir());
        for (k, v) in env {
            command.env(k, v);
        }
        Some(Client::start(command))
    }

    /// A daemon's `/mcp` over streamable HTTP with `token`.
    pub fn http(url: &str, token: &str) -> Option<Client> {
        let mut command = Command::new(python()?);
        command.arg(script()).args(["http", url, token]);
        Some(Client::start(command))
    }

    fn start(mut command: Command) -> Client {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the MCP client starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let ready = lines
            .next()
            .expect("the client says it is ready or fails")
            .expect("readable");
        assert_eq!(ready, r#"{"ready": true}"#, "the MCP session did not start");
        Client {
            child,
            stdin,
            lines,
        }
    }

    pub fn request(&mut self, request: Value) -> Value {
        writeln!(self.stdin, "{request}").expect("the client reads");
        let line = self
            .lines
            .next()
            .expect("the client answers")
            .expect("readable");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// A tool call: `{isError, text, structured}`, or `{error}` for an MCP
    /// error.
    pub fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request(json!({"op": "call", "tool": tool, "args": args}))
    }

    /// A call that must succeed: its structured output.
    pub fn ok(&mut self, tool: &str, args: Value) -> Value {
        let answer = self.call(tool, args);
        assert!(
            answer["error"].is_null() && answer["isError"] == false,
            "{tool} failed: {answer}"
        );
        answer["structured"].clone()
    }
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp_client.py")
}
