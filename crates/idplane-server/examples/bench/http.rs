//! The load generator's HTTP client: one keep-alive HTTP/1.1 connection per
//! worker on hyper's low-level client, so the generator spends as little of
//! the shared cores as wrk does and every scenario (peers included) goes
//! through the same code.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderName};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A response, body read in full.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The reply itself when its status is `status`, else an error that
    /// quotes the start of the body.
    pub fn expect(self, status: u16) -> Result<Self, Error> {
        if self.status.as_u16() == status {
            return Ok(self);
        }
        let shown = &self.body[..self.body.len().min(300)];
        Err(format!(
            "expected {status}, got {}: {}",
            self.status,
            String::from_utf8_lossy(shown)
        )
        .into())
    }

    pub fn json(&self) -> Result<serde_json::Value, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// A string member of the JSON body.
    pub fn field(&self, name: &str) -> Result<String, Error> {
        self.json()?[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no `{name}` in {}", String::from_utf8_lossy(&self.body)).into())
    }

    pub fn contains(&self, needle: &[u8]) -> bool {
        needle.is_empty() || self.body.windows(needle.len()).any(|w| w == needle)
    }
}

/// A request a scenario sends; hyper consumes requests, so this is the
/// reusable description (cloning the body is a reference count).
#[derive(Clone)]
pub struct Call {
    method: Method,
    path: String,
    headers: Vec<(HeaderName, String)>,
    body: Bytes,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header(header::AUTHORIZATION, &format!("Bearer {token}"))
    }

    pub fn basic(self, id: &str, secret: &str) -> Self {
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        self.header(header::AUTHORIZATION, &format!("Basic {pair}"))
    }

    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.body = Bytes::from(body);
        self.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
    }

    pub fn json(self, value: &serde_json::Value) -> Self {
        self.json_as("application/json", value)
    }

    pub fn json_as(mut self, content_type: &str, value: &serde_json::Value) -> Self {
        self.body = Bytes::from(value.to_string());
        self.header(header::CONTENT_TYPE, content_type)
    }
}

/// One keep-alive connection, reopened after the server closes it.
pub struct Conn {
    addr: SocketAddr,
    host: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            sender: None,
        }
    }

    pub async fn send(&mut self, call: &Call) -> Result<Reply, Error> {
        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(&call.path)
            .header(header::HOST, &self.host);
        for (name, value) in &call.headers {
            request = request.header(name, value.as_str());
        }
        let request = request.body(Full::new(call.body.clone()))?;
        let sender = self.ready().await?;
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, Error> {
        let sender = match self.sender.take() {
            Some(open) if !open.is_closed() => open,
            _ => {
                let stream = TcpStream::connect(self.addr).await?;
                stream.set_nodelay(true)?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(connection);
                sender
            }
        };
        let sender = self.sender.insert(sender);
        sender.ready().await?;
        Ok(sender)
    }
}
