//! Browser defences, checked before any route runs.
//!
//! A web page in a browser can send requests to any address, loopback included, and a request can change
//! state even when the page cannot read the answer (`mode: 'no-cors'`, an `<img>` source). So:
//! - A request from another origin (its `Origin` header, or `Sec-Fetch-Site: cross-site|same-site`
//!   without one) is refused with 403 unless `http.cors_origins` allows that origin; allowed origins get
//!   CORS headers (preflights included, answered by `tower_http::cors`). WebSocket upgrades carry `Origin`
//!   too, so the same rule covers them. Clients that are not browsers send neither header.
//! - On a loopback listener, a `Host` that is not a loopback name is refused (DNS rebinding: a page whose
//!   name was re-pointed at 127.0.0.1 is same-origin to itself, but still names itself in `Host`).
//! - Bodies must say they are JSON, MessagePack or bytes (see `body::parse_body`): the content types a
//!   page may send cross-origin without a preflight are refused with 415.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::body::ApiError;
use crate::config::Config;

/// The rules, from the configuration.
pub struct Guard {
    any_origin: bool,
    origins: Vec<String>,
    /// The listener is on loopback: only loopback names (and `allowed_hosts`) may appear in `Host`.
    loopback: bool,
    hosts: Vec<String>,
}

impl Guard {
    pub fn new(config: &Config) -> Guard {
        let origins: Vec<String> = config.http.cors_origins.iter().map(|o| o.to_ascii_lowercase()).collect();
        Guard {
            any_origin: origins.iter().any(|o| o == "*"),
            origins,
            loopback: config.http_addr.ip().is_loopback(),
            hosts: config.http.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    /// The CORS layer for the allowed origins (none: no CORS headers at all).
    pub fn cors(&self) -> Option<tower_http::cors::CorsLayer> {
        use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
        if self.origins.is_empty() {
            return None;
        }
        let origin = if self.any_origin {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(self.origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        };
        Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods(AllowMethods::mirror_request())
                .allow_headers(AllowHeaders::mirror_request())
                .max_age(std::time::Duration::from_secs(600)),
        )
    }

    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.any_origin
            || self.origins.contains(&origin)
            || host.is_some_and(|h| origin == format!("http://{}", h.to_ascii_lowercase()))
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host.as_str(),
            },
        };
        name == "localhost"
            || name.ends_with(".localhost")
            || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            || self.hosts.iter().any(|h| h == name)
    }

    /// The refusal for a request these rules do not allow.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let forbidden = |code: &'static str, message: String| ApiError { status: StatusCode::FORBIDDEN, code, message };
        let host = headers.get(header::HOST).map(|v| v.to_str().unwrap_or("?"));
        if self.loopback
            && let Some(h) = host
            && !self.host_allowed(h)
        {
            return Err(forbidden(
                "FORBIDDEN_HOST",
                format!("Host '{h}' is not a loopback name; add it to http.allowed_hosts to serve it"),
            ));
        }
        match headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("?")) {
            Some(origin) if !self.origin_allowed(origin, host) => Err(forbidden(
                "FORBIDDEN_ORIGIN",
                format!("requests from origin '{origin}' are refused; allow it with http.cors_origins"),
            )),
            Some(_) => Ok(()),
            None => match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
                Some(site @ ("cross-site" | "same-site")) => {
                    Err(forbidden("FORBIDDEN_ORIGIN", format!("a {site} browser request without an Origin is refused")))
                }
                _ => Ok(()),
            },
        }
    }
}

/// The middleware: refuses what [`Guard::check`] refuses, before routing.
pub async fn guard(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    match g.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn guard(origins: &[&str], addr: &str) -> Guard {
        let mut c = Config::default();
        c.http.cors_origins = origins.iter().map(|s| s.to_string()).collect();
        c.http_addr = addr.parse().unwrap();
        Guard::new(&c)
    }

    #[test]
    fn origins_hosts_and_fetch_sites() {
        let g = guard(&["https://app.example.com"], "127.0.0.1:15500");
        let ok = |h: &[(&'static str, &str)]| g.check(&headers(h)).is_ok();
        assert!(ok(&[("host", "127.0.0.1:15500")]), "curl");
        assert!(ok(&[("host", "localhost")]));
        assert!(ok(&[("host", "[::1]:15500")]));
        assert!(!ok(&[("host", "evil.example:15500")]), "DNS rebinding");
        assert!(!ok(&[("host", "127.0.0.1:15500"), ("origin", "http://evil.example")]));
        assert!(!ok(&[("host", "127.0.0.1:15500"), ("origin", "null")]));
        assert!(ok(&[("host", "127.0.0.1:15500"), ("origin", "https://app.example.com")]));
        assert!(ok(&[("host", "127.0.0.1:15500"), ("origin", "http://127.0.0.1:15500")]), "same origin");
        assert!(!ok(&[("host", "127.0.0.1:15500"), ("sec-fetch-site", "cross-site")]), "an <img> GET");
        assert!(ok(&[("host", "127.0.0.1:15500"), ("sec-fetch-site", "none")]), "typed in the address bar");
        // Bound to every interface: any Host is served.
        let open = guard(&[], "0.0.0.0:15500");
        assert!(open.check(&headers(&[("host", "synap.internal:15500")])).is_ok());
        assert!(open.check(&headers(&[("host", "synap.internal"), ("origin", "http://x.example")])).is_err());
        let any = guard(&["*"], "127.0.0.1:1");
        assert!(any.check(&headers(&[("origin", "http://x.example")])).is_ok());
    }
}
