//! A real `idplane` process per test: a free port, a fresh data directory,
//! a bounded wait for `/healthz`, and the process killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_idplane");

/// Settings the child must not inherit from the environment of the test run.
const SCRUBBED_ENV: &[&str] = &[
    "IDPLANE_LISTEN",
    "IDPLANE_DATA",
    "IDPLANE_ISSUER",
    "IDPLANE_DATABASE_URL",
    "IDPLANE_CONFIG",
    "IDPLANE_DEV_ROOT_TOKEN",
    "IDPLANE_LOG_FORMAT",
    "IDPLANE_CHECKPOINT_INTERVAL",
    "IDPLANE_ROOT_KEY",
    "IDPLANE_SERVER",
    "IDPLANE_TOKEN",
];

/// How long a server may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A command for the binary with a clean environment.
pub fn idplane() -> Command {
    let mut cmd = Command::new(BIN);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("IDPLANE_LOG", "warn");
    cmd
}

/// A random token-like string from the OS random source.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A free local port (bound and released; the server binds it right after).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A running `idplane serve`.
#[derive(Debug)]
pub struct TestServer {
    child: Option<Child>,
    /// Everything the process wrote to stderr so far.
    stderr: Arc<Mutex<String>>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The dev-mode root token (empty outside dev mode).
    pub root: String,
    pub client: reqwest::Client,
    /// The data directory.
    data: PathBuf,
    issuer_is_address: bool,
    /// Owns the data directory when the server created it.
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A dev-mode server with a random root token, on a fresh data directory.
    pub async fn dev() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut server = Self::start(&data, true).await;
        server._dir = Some(dir);
        server
    }

    /// A dev-mode server whose issuer is its own loopback address, as OIDC
    /// clients that fetch discovery need.
    pub async fn dev_oidc() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut server = Self::start_with(&data, true, true).await;
        server._dir = Some(dir);
        server
    }

    /// A server on `data` (created if missing), in dev mode or not.
    pub async fn start(data: &Path, dev: bool) -> Self {
        Self::start_with(data, dev, false).await
    }

    async fn start_with(data: &Path, dev: bool, issuer_is_address: bool) -> Self {
        let root = if dev {
            format!("test-root-{}", random_hex(16))
        } else {
            String::new()
        };
        let mut last_error = String::new();
        // The port is free when picked, but another test may take it before
        // the child binds it: retry on a new port in that case only.
        for _ in 0..5 {
            match Self::launch(data, dev, issuer_is_address, free_port(), &root).await {
                Ok(server) => return server,
                Err(e) => {
                    last_error = e;
                    if !last_error.contains("cannot listen") {
                        break;
                    }
                }
            }
        }
        panic!("idplane did not start: {last_error}");
    }

    /// Stops the server (if running) and starts it again on the same port,
    /// data directory and root token, as after an outage.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.terminate().await;
        }
        let port: u16 = self
            .base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in base URL");
        let (data, dev) = (self.data.clone(), !self.root.is_empty());
        let started = Self::launch(&data, dev, self.issuer_is_address, port, &self.root).await;
        let mut server = started.unwrap_or_else(|e| panic!("idplane did not restart: {e}"));
        server._dir = self._dir.take();
        *self = server;
    }

    async fn launch(
        data: &Path,
        dev: bool,
        issuer_is_address: bool,
        port: u16,
        root: &str,
    ) -> Result<Self, String> {
        let mut cmd = idplane();
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(data);
        if dev {
            cmd.arg("--dev").arg("--dev-root-token").arg(root);
        }
        if issuer_is_address {
            cmd.arg("--issuer").arg(format!("http://127.0.0.1:{port}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn idplane serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr pipe");
        let sink = stderr.clone();
        // Drain stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        let mut server = TestServer {
            child: Some(child),
            stderr,
            base: format!("http://127.0.0.1:{port}"),
            root: root.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            data: data.to_owned(),
            issuer_is_address,
            _dir: None,
        };
        server.wait_healthy().await.map(|()| server)
    }

    /// Polls `/healthz` until it answers 200, the process dies, or time runs out.
    async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let url = format!("{}/healthz", self.base);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                // Give the reader a moment to collect the reason.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(format!("exited with {status}: {}", self.stderr()));
            }
            if let Ok(r) = self
                .client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status() == StatusCode::OK
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "no healthy answer within {START_TIMEOUT:?}: {}",
                    self.stderr()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits (bounded) until stderr contains `needle`; returns stderr.
    pub async fn wait_stderr(&self, needle: &str) -> String {
        for _ in 0..100 {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("stderr never contained {needle:?}:\n{}", self.stderr());
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM").await
    }

    /// Sends a signal (`TERM`, `INT`) and waits (bounded) for the process to exit.
    pub async fn signal(&mut self, name: &str) -> ExitStatus {
        let pid = self.pid();
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} {pid} failed");
        let child = self.child.as_mut().expect("running");
        for _ in 0..200 {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "idplane did not exit within 10 s of SIG{name}:\n{}",
            self.stderr()
        );
    }

    /// A full URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the root token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.req_as(&self.root, method, path)
    }

    /// A request with `token` as bearer.
    pub fn req_as(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// GET with the root token, expecting 200; the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.req(Method::GET, path).send().await.expect("send");
        expect_json(r, StatusCode::OK).await
    }

    /// POST JSON with the root token, expecting 201; the JSON body.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let r = self
            .req(Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("send");
        expect_json(r, StatusCode::CREATED).await
    }

    /// All audit records of the default tenant (tests stay far below 1000).
    pub async fn audit(&self) -> Vec<Value> {
        self.audit_query("").await
    }

    /// Audit records of the default tenant matching a query string (`&k=v`).
    pub async fn audit_query(&self, query: &str) -> Vec<Value> {
        let page = self
            .get_json(&format!("/api/v1/audit?limit=1000{query}"))
            .await;
        assert!(
            page["next_cursor"].is_null(),
            "more than 1000 audit records"
        );
        page["items"].as_array().expect("items").clone()
    }

    /// Waits (bounded) for audit records matching `query` that a
    /// background task writes after the response (e.g. deliveries).
    pub async fn wait_audit(&self, query: &str) -> Vec<Value> {
        for _ in 0..100 {
            let found = self.audit_query(query).await;
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no audit record matched {query:?}");
    }

    /// How many audit records the default tenant has.
    pub async fn audit_count(&self) -> usize {
        self.audit().await.len()
    }

    /// Issues a token with the root token: `(id, secret)`.
    pub async fn token(&self, body: Value) -> (String, String) {
        let t = self.create("/api/v1/tokens", body).await;
        (s(&t["id"]), s(&t["secret"]))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A JSON string value as an owned string.
pub fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// The JSON body of a response of `status`.
pub async fn expect_json(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let url = r.url().clone();
    let text = r.text().await.expect("body");
    assert_eq!(got, status, "{url}: unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {text}"))
}

/// Checks an RFC 9457 problem response of `status` and returns it.
pub async fn expect_problem(r: Response, status: StatusCode) -> Value {
    let headers: HeaderMap = r.headers().clone();
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let p = expect_json(r, status).await;
    assert_eq!(
        content_type, "application/problem+json",
        "problem content type: {p}"
    );
    assert!(
        p["type"].as_str().is_some_and(|t| !t.is_empty()),
        "problem type: {p}"
    );
    assert!(
        p["title"].as_str().is_some_and(|t| !t.is_empty()),
        "problem title: {p}"
    );
    assert_eq!(p["status"], status.as_u16(), "problem status: {p}");
    assert!(
        p["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "problem detail: {p}"
    );
    p
}

/// The `ETag` header of a response.
pub fn etag(r: &Response) -> String {
    r.headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .expect("ETag header")
        .to_owned()
}
