//! The upstream HTTP client.
//!
//! Requests go through hyper's pooled client (hyper-util's, with rustls
//! for `https`), except where the environment routes the upstream through
//! a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, less `NO_PROXY`):
//! those go through reqwest, which speaks to proxies (and so do base URLs
//! with a user and password in them). reqwest on the direct path costs
//! more per request (its redirect layer parses the URL twice per request,
//! even with redirects off; `bench/client.sh` weighs the two). Both answer
//! with the same `Response`, so the callers do not know which one sent.
//!
//! hyper's pool runs each connection's task on the runtime that opened it,
//! so one client shared by `serve`'s per-core runtimes would hand about
//! every other request to another thread and back. On those threads
//! (marked by [`per_core`]) each thread keeps its own clients, and so its
//! own pools, for each setting; elsewhere (tests, tools, the
//! multi-threaded runtime) the shared ones answer.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// An answer's body, whichever client fetched it.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
pub type Response = http::Response<Body>;

type Hyper = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Clone)]
struct Clients {
    hyper: Hyper,
    /// For upstreams behind a proxy.
    reqwest: reqwest::Client,
}

/// Where an upstream's requests go: its URL, parsed once for either
/// client, and which client sends there (decided once, when the policy
/// is loaded, as the environment's proxies are read).
#[derive(Clone, Debug)]
pub struct Target {
    url: reqwest::Url,
    uri: Uri,
    via_reqwest: bool,
}

#[derive(Clone)]
pub struct Http {
    connect_timeout: Duration,
    shared: Clients,
    /// The environment's proxies, read once (as reqwest reads them).
    proxies: Arc<Matcher>,
}

thread_local! {
    static PER_CORE: Cell<bool> = const { Cell::new(false) };
    /// This thread's clients, by connect timeout (the one setting that
    /// differs between providers); a handful at most.
    static LOCAL: RefCell<Vec<(Duration, Clients)>> = const { RefCell::new(Vec::new()) };
}

/// Marks the calling thread as one of `serve`'s per-core runtime threads.
pub fn per_core() {
    PER_CORE.with(|p| p.set(true));
}

/// TLS for `https` upstreams: the platform's roots and the Mozilla set
/// (as reqwest trusts), loaded once per process.
fn tls() -> anyhow::Result<rustls::ClientConfig> {
    static TLS: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    let made = TLS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .map_err(|e| e.to_string())
    });
    made.clone()
        .map_err(|e| anyhow::anyhow!("TLS for the upstream client: {e}"))
}

fn build(connect_timeout: Duration) -> anyhow::Result<Clients> {
    let reqwest = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .connect_timeout(connect_timeout)
        .build()?;
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls()?)
        .https_or_http()
        // HTTP/2 where an `https` upstream offers it (ALPN), as reqwest did.
        .enable_all_versions()
        .wrap_connector(tcp);
    let hyper = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(1024)
        .build(https);
    Ok(Clients { hyper, reqwest })
}

impl Http {
    pub fn new(connect_timeout: Duration) -> anyhow::Result<Http> {
        Http::with_proxies(connect_timeout, Matcher::from_system())
    }

    fn with_proxies(connect_timeout: Duration, proxies: Matcher) -> anyhow::Result<Http> {
        Ok(Http {
            connect_timeout,
            shared: build(connect_timeout)?,
            proxies: Arc::new(proxies),
        })
    }

    /// `url` as a target of this client: `Err` (the parse error) for one
    /// that is not a valid absolute URL. It goes through reqwest when a
    /// proxy applies to it, or when it has a user and password (reqwest
    /// makes them basic auth).
    pub fn target(&self, url: &str) -> Result<Target, String> {
        let url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        let via_reqwest = !url.username().is_empty()
            || url.password().is_some()
            || self.proxies.intercept(&uri).is_some();
        Ok(Target {
            url,
            uri,
            via_reqwest,
        })
    }

    /// The clients for this thread.
    fn clients(&self) -> Clients {
        if !PER_CORE.with(Cell::get) {
            return self.shared.clone();
        }
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            if let Some((_, c)) = local.iter().find(|(t, _)| *t == self.connect_timeout) {
                return c.clone();
            }
            match build(self.connect_timeout) {
                Ok(c) => {
                    local.push((self.connect_timeout, c.clone()));
                    c
                }
                Err(_) => self.shared.clone(),
            }
        })
    }

    /// `POST`s `body` to `to` with `headers`; the answer once its head
    /// has come (its body streams).
    pub async fn post(
        &self,
        to: &Target,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, BoxError> {
        let clients = self.clients();
        if to.via_reqwest {
            let sent = clients
                .reqwest
                .post(to.url.clone())
                .headers(headers.clone());
            let resp: http::Response<reqwest::Body> = sent.body(body).send().await?.into();
            return Ok(boxed(resp));
        }
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = to.uri.clone();
        *req.headers_mut() = headers.clone();
        // What reqwest sends by default, so upstreams see the same request.
        req.headers_mut()
            .entry(header::ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        Ok(boxed(clients.hyper.request(req).await?))
    }
}

/// `resp` with its body as a `Body`, whichever client it came from.
fn boxed<B>(resp: http::Response<B>) -> Response
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    resp.map(|b| b.map_err(Into::into).boxed_unsync())
}

/// The whole body of `resp`.
pub async fn bytes(resp: Response) -> Result<Bytes, BoxError> {
    Ok(resp.into_body().collect().await?.to_bytes())
}

/// The body of `resp`, as its chunks come.
pub fn chunks(resp: Response) -> http_body_util::BodyDataStream<Body> {
    http_body_util::BodyDataStream::new(resp.into_body())
}

/// Whether `e` (from `post` or a body) is a timeout: connecting (the
/// provider's `connect_timeout`) or reqwest's own.
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_core_threads_keep_their_own_client_per_setting() {
        let local = || LOCAL.with(|l| l.borrow().len());
        let three = Http::new(Duration::from_secs(3)).unwrap();
        // Unmarked threads share the client: nothing is kept per thread.
        let _ = three.clients();
        assert_eq!(local(), 0);
        let counts = std::thread::spawn(move || {
            per_core();
            let _ = three.clients();
            let _ = three.clients();
            let again = Http::new(Duration::from_secs(3)).unwrap();
            let _ = again.clients();
            let after_same = local();
            let _ = Http::new(Duration::from_secs(5)).unwrap().clients();
            (after_same, local())
        })
        .join()
        .unwrap();
        assert_eq!(counts, (1, 2));
    }

    #[test]
    fn proxied_upstreams_and_user_passwords_go_through_reqwest() {
        let proxies = Matcher::builder()
            .http("http://127.0.0.1:3128")
            .no("internal.example")
            .build();
        let http = Http::with_proxies(Duration::from_secs(3), proxies).unwrap();
        let via = |u: &str| http.target(u).unwrap().via_reqwest;
        assert!(via("http://api.example.com/v1/chat/completions"));
        assert!(!via("http://internal.example/v1/chat/completions"));
        // No HTTPS proxy set: straight to the server.
        assert!(!via("https://api.example.com/v1/chat/completions"));
        assert!(via("https://user:pass@api.example.com/v1/chat/completions"));
        let none = Http::with_proxies(Duration::from_secs(3), Matcher::builder().build()).unwrap();
        assert!(!none.target("http://127.0.0.1:9/v1").unwrap().via_reqwest);
        assert!(none.target("not a url").is_err());
    }

    #[test]
    fn timeouts_are_told_from_other_failures_through_the_chain() {
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let timed_out = Wrapped(std::io::Error::new(std::io::ErrorKind::TimedOut, "t"));
        let refused = Wrapped(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "r",
        ));
        assert!(is_timeout(&timed_out));
        assert!(!is_timeout(&refused));
    }

    /// Accepts one connection on `listener`, reads a request whose body
    /// ends with `{"a":1}`, answers 201 "hello"; returns what it read.
    async fn answer_once(listener: tokio::net::TcpListener) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"{\"a\":1}") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let answer = "HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello";
        sock.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8(got).unwrap().to_ascii_lowercase()
    }

    /// Posts `{"a":1}` to `http://{userinfo}{addr}/v1/chat/completions`
    /// with the clients of `http`; the request as the server read it.
    async fn post_once(userinfo: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = Http::with_proxies(Duration::from_secs(3), Matcher::builder().build()).unwrap();
        let url = format!("http://{userinfo}{addr}/v1/chat/completions");
        let url = http.target(&url).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let client = async {
            let body = Bytes::from_static(b"{\"a\":1}");
            let resp = http.post(&url, &headers, body).await.unwrap();
            assert_eq!(resp.status(), 201);
            bytes(resp).await.unwrap()
        };
        let (request, body) = tokio::join!(answer_once(listener), client);
        assert_eq!(&body[..], b"hello");
        for line in [
            format!("host: {addr}"),
            "content-type: application/json".into(),
            "content-length: 7".into(),
            "accept: */*".into(),
        ] {
            assert!(
                request.contains(&format!("{line}\r\n")),
                "no `{line}` in {request}"
            );
        }
        request
    }

    #[tokio::test]
    async fn https_upstreams_are_offered_http2_and_http1() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The client's hello, in the clear: its ALPN list names both.
        let hello = async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut got = vec![0u8; 4096];
            let n = sock.read(&mut got).await.unwrap();
            got.truncate(n);
            got
        };
        let http = Http::with_proxies(Duration::from_secs(3), Matcher::builder().build()).unwrap();
        let url = http
            .target(&format!("https://{addr}/v1/chat/completions"))
            .unwrap();
        let headers = HeaderMap::new();
        let post = http.post(&url, &headers, Bytes::new());
        let (hello, _) = tokio::join!(hello, post);
        let has = |p: &[u8]| hello.windows(p.len()).any(|w| w == p);
        assert_eq!(hello.first(), Some(&0x16), "not a TLS handshake");
        assert!(has(b"\x02h2\x08http/1.1"), "ALPN without h2: {hello:?}");
    }

    #[tokio::test]
    async fn both_clients_send_the_same_request_and_read_the_answer() {
        let direct = post_once("").await;
        assert!(
            direct.starts_with("post /v1/chat/completions http/1.1\r\n"),
            "{direct}"
        );
        assert!(!direct.contains("authorization"), "{direct}");
        // Through reqwest: the user and password become basic auth.
        let reqwest = post_once("user:pass@").await;
        assert!(
            reqwest.starts_with("post /v1/chat/completions http/1.1\r\n"),
            "{reqwest}"
        );
        assert!(
            reqwest.contains("authorization: basic dxnlcjpwyxnz\r\n"),
            "{reqwest}"
        );
    }
}
