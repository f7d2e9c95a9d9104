//! How `wren` reaches one registry, decided before oci-client takes over:
//! the scheme (HTTPS, verified against the system's CAs and the extra
//! ones given; or, for an *insecure* registry, HTTPS without verification
//! and else plain HTTP, as Docker's `insecure-registries` and Podman's
//! `--tls-verify=false` do), and whether a user's credentials are good
//! (`wren login` asks the registry before it stores anything, as
//! `docker login` does).
//!
//! An insecure registry costs one probe (`GET /v2/` over HTTPS, and over
//! HTTP when no TLS answered); a secure one costs nothing here. The probe
//! and the login check use reqwest directly, the same reqwest oci-client
//! is built on (no second HTTP stack in the binary).
//!
//! Runs in the `wren` process only (feature `pull`).

use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;

use crate::pull::{chain, PullError};

/// How long a probe or login check waits to connect, and in all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a pull waits for the next byte.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The scheme a registry is spoken to with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// HTTPS, the certificate verified.
    Https,
    /// HTTPS, any certificate accepted (an insecure registry).
    HttpsUnverified,
    /// Plain HTTP (an insecure registry without TLS).
    Http,
}

impl Scheme {
    fn url(self, registry: &str, path: &str) -> String {
        let s = if self == Scheme::Http {
            "http"
        } else {
            "https"
        };
        format!("{s}://{registry}{path}")
    }
}

/// One registry, reachable: its `host[:port]`, scheme and extra CAs
/// (PEM).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub registry: String,
    pub scheme: Scheme,
    certs: Vec<Vec<u8>>,
}

impl Endpoint {
    /// `registry` spoken to over verified HTTPS, trusting `certs` too.
    pub fn secure(registry: &str, certs: Vec<Vec<u8>>) -> Self {
        Self {
            registry: registry.to_string(),
            scheme: Scheme::Https,
            certs,
        }
    }

    /// An insecure `registry`: HTTPS without verification if it speaks
    /// TLS, else plain HTTP; an error naming both attempts (and `image`,
    /// for a pull) when neither answers. Any HTTP answer to `GET /v2/` (401 included) counts.
    pub fn insecure(
        rt: &tokio::runtime::Runtime,
        image: Option<&str>,
        registry: &str,
        certs: Vec<Vec<u8>>,
    ) -> Result<Self, PullError> {
        let mut tried = Vec::new();
        for scheme in [Scheme::HttpsUnverified, Scheme::Http] {
            let e = Self {
                registry: registry.to_string(),
                scheme,
                certs: certs.clone(),
            };
            let client = e.http_client()?;
            let url = scheme.url(registry, "/v2/");
            match rt.block_on(async { client.get(&url).send().await }) {
                Ok(_) => return Ok(e),
                Err(err) => tried.push(format!("{url}: {}", chain(&err))),
            }
        }
        Err(PullError::Unreachable {
            image: image.map(str::to_string),
            registry: registry.to_string(),
            tried: tried.join("; "),
        })
    }

    /// oci-client's configuration for this endpoint.
    pub fn client_config(&self) -> ClientConfig {
        let protocol = match self.scheme {
            Scheme::Http => ClientProtocol::Http,
            _ => ClientProtocol::Https,
        };
        let unverified = self.scheme == Scheme::HttpsUnverified;
        ClientConfig {
            protocol,
            // A link that stalls (no byte for a minute) fails, and the
            // pull's retry resumes where it stopped.
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            accept_invalid_certificates: unverified,
            accept_invalid_hostnames: unverified,
            extra_root_certificates: self
                .certs
                .iter()
                .map(|data| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: data.clone(),
                })
                .collect(),
            ..ClientConfig::default()
        }
    }

    fn http_client(&self) -> Result<reqwest::Client, PullError> {
        let login = |what: String| PullError::Login {
            registry: self.registry.clone(),
            what,
        };
        let mut b = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("wren/", env!("CARGO_PKG_VERSION")));
        if self.scheme == Scheme::HttpsUnverified {
            b = b
                .tls_danger_accept_invalid_certs(true)
                .tls_danger_accept_invalid_hostnames(true);
        }
        let mut certs = Vec::new();
        for pem in &self.certs {
            certs.push(
                reqwest::Certificate::from_pem(pem)
                    .map_err(|e| login(format!("a CA certificate: {}", chain(&e))))?,
            );
        }
        if !certs.is_empty() {
            b = b.tls_certs_merge(certs);
        }
        b.build()
            .map_err(|e| login(format!("the HTTP client: {}", chain(&e))))
    }

    /// `GET /v2/` without credentials: its status and challenge (`None`
    /// when it sent none), or what failed, for `fail` to name.
    async fn ask_v2(
        &self,
        client: &reqwest::Client,
    ) -> Result<(StatusCode, Option<Challenge>), String> {
        let url = self.scheme.url(&self.registry, "/v2/");
        let res = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", chain(&e)))?;
        let challenge = res
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .map(Challenge::parse);
        Ok((res.status(), challenge))
    }

    /// Whether `user` / `password` are good here: `GET /v2/` and, on a
    /// Basic challenge, the same with the credentials; on a Bearer
    /// challenge, a token asked of its realm with them (no repository
    /// scope, as `docker login` asks). A registry that wants no
    /// credentials takes any. The error says what the registry answered.
    pub fn check_login(
        &self,
        rt: &tokio::runtime::Runtime,
        user: &str,
        password: &str,
    ) -> Result<(), PullError> {
        let client = self.http_client()?;
        let fail = |what: String| PullError::Login {
            registry: self.registry.clone(),
            what,
        };
        let url = self.scheme.url(&self.registry, "/v2/");
        rt.block_on(async {
            let (status, challenge) = self.ask_v2(&client).await.map_err(fail)?;
            if status.is_success() {
                return Ok(());
            }
            if status != StatusCode::UNAUTHORIZED {
                return Err(fail(format!("GET {url}: {status}")));
            }
            let challenge = challenge.unwrap_or(Challenge::Basic);
            let (target, req) = match &challenge {
                Challenge::Basic => (url.clone(), client.get(&url)),
                Challenge::Bearer { realm, service } => {
                    let mut q = vec![("account", user)];
                    if let Some(s) = service {
                        q.push(("service", s.as_str()));
                    }
                    (realm.clone(), client.get(realm).query(&q))
                }
                Challenge::Other(scheme) => {
                    return Err(fail(format!(
                        "GET {url}: the registry wants {scheme} authentication, which wren does not speak"
                    )))
                }
            };
            let res = req
                .basic_auth(user, Some(password))
                .send()
                .await
                .map_err(|e| fail(format!("GET {target}: {}", chain(&e))))?;
            match res.status() {
                s if s.is_success() => Ok(()),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(fail(format!(
                    "unauthorized: the registry refused user {user:?} ({})",
                    res.status()
                ))),
                s => Err(fail(format!("GET {target}: {s}"))),
            }
        })
    }
}

impl Endpoint {
    /// An access token to pull `repository`, for the OAuth2 refresh token
    /// `identity` (a Docker config's `identitytoken`, as `az acr login`
    /// writes): the Bearer challenge of `GET /v2/` names the realm, which
    /// is sent `grant_type=refresh_token` with the service and scope, as
    /// the distribution token spec's OAuth2 flow and Docker do.
    pub fn exchange_identity_token(
        &self,
        rt: &tokio::runtime::Runtime,
        identity: &str,
        repository: &str,
    ) -> Result<String, PullError> {
        let client = self.http_client()?;
        let fail = |what: String| PullError::Token {
            registry: self.registry.clone(),
            what,
        };
        let url = self.scheme.url(&self.registry, "/v2/");
        rt.block_on(async {
            let (status, challenge) = self.ask_v2(&client).await.map_err(fail)?;
            let Some(Challenge::Bearer { realm, service }) = challenge else {
                return Err(fail(format!(
                    "GET {url} ({status}) named no Bearer token realm to exchange it at"
                )));
            };
            let mut form =
                reqwest::Url::parse("http://form.invalid/").map_err(|e| fail(e.to_string()))?;
            {
                let mut q = form.query_pairs_mut();
                q.append_pair("grant_type", "refresh_token");
                q.append_pair("refresh_token", identity);
                q.append_pair("client_id", "wren");
                q.append_pair("scope", &format!("repository:{repository}:pull"));
                if let Some(s) = &service {
                    q.append_pair("service", s);
                }
            }
            let body = form.query().unwrap_or_default().to_string();
            let res = client
                .post(&realm)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body)
                .send()
                .await
                .map_err(|e| fail(format!("POST {realm}: {}", chain(&e))))?;
            let status = res.status();
            let text = res
                .text()
                .await
                .map_err(|e| fail(format!("POST {realm}: {}", chain(&e))))?;
            if !status.is_success() {
                return Err(fail(format!("POST {realm}: {status}")));
            }
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| fail(format!("POST {realm}: the answer is not JSON: {e}")))?;
            v["access_token"]
                .as_str()
                .or_else(|| v["token"].as_str())
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .ok_or_else(|| fail(format!("POST {realm}: the answer has no access_token")))
        })
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
    Other(String),
}

impl Challenge {
    /// `Basic realm="x"`, `Bearer realm="https://auth/token",service="reg"`.
    fn parse(header: &str) -> Self {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Challenge::Basic,
            "bearer" => {
                let mut realm = None;
                let mut service = None;
                for (k, v) in auth_params(params) {
                    match k.to_ascii_lowercase().as_str() {
                        "realm" => realm = Some(v),
                        "service" => service = Some(v),
                        _ => {}
                    }
                }
                match realm {
                    Some(realm) => Challenge::Bearer { realm, service },
                    None => Challenge::Other("Bearer without a realm".into()),
                }
            }
            _ => Challenge::Other(scheme.to_string()),
        }
    }
}

/// `k="v", k2=v2` (RFC 7235 auth-params; a quoted value may hold commas
/// and `\"`).
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A one-thread HTTP/1.1 server on 127.0.0.1 answering each request
    /// (path with query, Authorization header) with `answer`'s status,
    /// extra header and body; every connection is closed after one answer.
    fn serve(
        answer: impl Fn(&str, Option<&str>, &str) -> (u16, String, String) + Send + 'static,
    ) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let me = addr.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut path = line.split(' ').nth(1).unwrap_or("").to_string();
                let mut auth = None;
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        }
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                // A POST's form body joins the path, after a `#`.
                if length > 0 {
                    let mut body = vec![0u8; length];
                    let _ = std::io::Read::read_exact(&mut r, &mut body);
                    path = format!("{path}#{}", String::from_utf8_lossy(&body));
                }
                let (status, header, body) = answer(&path, auth.as_deref(), &me);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        addr
    }

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn http(addr: &str) -> Endpoint {
        Endpoint {
            registry: addr.to_string(),
            scheme: Scheme::Http,
            certs: Vec::new(),
        }
    }

    #[test]
    fn a_bearer_login_asks_the_token_realm() {
        let addr = serve(|path, auth, me| {
            let good = auth == Some(basic("u", "p w").as_str());
            match path {
                "/v2/" => (
                    401,
                    format!(
                        "WWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"reg, test\"\r\n"
                    ),
                    String::new(),
                ),
                p if p.starts_with("/token?") && p.contains("account=u") && p.contains("service=reg%2C+test") => {
                    if good {
                        (200, String::new(), "{\"token\":\"t\"}".into())
                    } else {
                        (401, String::new(), String::new())
                    }
                }
                _ => (404, String::new(), String::new()),
            }
        });
        let rt = rt();
        http(&addr).check_login(&rt, "u", "p w").unwrap();
        let e = chain(&http(&addr).check_login(&rt, "u", "bad").unwrap_err());
        assert!(e.contains(&format!("login {addr}: unauthorized")), "{e}");
    }

    #[test]
    fn a_basic_login_is_checked_and_an_open_registry_takes_any() {
        let addr = serve(|_, auth, _| match auth {
            Some(a) if a == basic("u", "p") => (200, String::new(), "{}".into()),
            _ => (
                401,
                "WWW-Authenticate: Basic realm=\"r\"\r\n".into(),
                String::new(),
            ),
        });
        let rt = rt();
        http(&addr).check_login(&rt, "u", "p").unwrap();
        assert!(http(&addr).check_login(&rt, "u", "x").is_err());
        let open = serve(|_, _, _| (200, String::new(), "{}".into()));
        http(&open).check_login(&rt, "u", "anything").unwrap();
        let odd = serve(|_, _, _| (500, String::new(), String::new()));
        let e = chain(&http(&odd).check_login(&rt, "u", "p").unwrap_err());
        assert!(e.contains("500"), "{e}");
    }

    #[test]
    fn an_insecure_registry_without_tls_is_spoken_to_over_http() {
        let addr = serve(|_, _, _| (200, String::new(), "{}".into()));
        let e = Endpoint::insecure(&rt(), None, &addr, Vec::new()).unwrap();
        assert_eq!(e.scheme, Scheme::Http);
        assert!(matches!(e.client_config().protocol, ClientProtocol::Http));
        // Nothing listening: both tries are named.
        let gone = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let err = chain(&Endpoint::insecure(&rt(), None, &gone, Vec::new()).unwrap_err());
        assert!(
            err.contains(&format!("https://{gone}/v2/"))
                && err.contains(&format!("http://{gone}/v2/")),
            "{err}"
        );
    }

    #[test]
    fn an_identity_token_is_exchanged_at_the_realm() {
        let addr = serve(|path, _, me| {
            match path {
            "/v2/" => (
                401,
                format!("WWW-Authenticate: Bearer realm=\"http://{me}/oauth2/token\",service=\"reg\"\r\n"),
                String::new(),
            ),
            p if p.starts_with("/oauth2/token#")
                && p.contains("grant_type=refresh_token")
                && p.contains("refresh_token=r%2Bt%3D")
                && p.contains("scope=repository%3Ateam%2Fapp%3Apull")
                && p.contains("service=reg") =>
            {
                (200, String::new(), "{\"access_token\":\"A\"}".into())
            }
            _ => (401, String::new(), String::new()),
        }
        });
        let rt = rt();
        let t = http(&addr)
            .exchange_identity_token(&rt, "r+t=", "team/app")
            .unwrap();
        assert_eq!(t, "A");
        let e = chain(
            &http(&addr)
                .exchange_identity_token(&rt, "stale", "team/app")
                .unwrap_err(),
        );
        assert!(
            e.contains(&format!("registry {addr}: exchange the identity token"))
                && e.contains("401"),
            "{e}"
        );
        // A registry without a token realm cannot take one.
        let basic = serve(|_, _, _| {
            (
                401,
                "WWW-Authenticate: Basic realm=\"r\"\r\n".into(),
                String::new(),
            )
        });
        let e = chain(
            &http(&basic)
                .exchange_identity_token(&rt, "t", "a")
                .unwrap_err(),
        );
        assert!(e.contains("no Bearer token realm"), "{e}");
    }

    #[test]
    fn challenges_parse() {
        assert_eq!(Challenge::parse("Basic realm=\"x\""), Challenge::Basic);
        assert_eq!(
            Challenge::parse(
                "Bearer realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"a:b:pull\""
            ),
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            }
        );
        assert_eq!(
            Challenge::parse("bearer realm=https://a/t"),
            Challenge::Bearer {
                realm: "https://a/t".into(),
                service: None
            }
        );
        assert_eq!(
            Challenge::parse("Negotiate"),
            Challenge::Other("Negotiate".into())
        );
        assert!(matches!(
            Challenge::parse("Bearer service=\"x\""),
            Challenge::Other(_)
        ));
    }
}
