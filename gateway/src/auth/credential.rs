//! Reading the credential of a request (without verifying it).

use super::SESSION_COOKIE;
use axum::http::{header, HeaderMap, Method, Uri};

/// Where a credential came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer`.
    Bearer,
    /// The session cookie (state-changing requests must pass the CSRF rule).
    Cookie,
    /// `?access_token=` on a `GET` (dashboard-link tokens only).
    QueryToken,
}

/// A credential as presented.
#[derive(Debug)]
pub struct Presented {
    /// The token (key, link token or session token).
    pub token: String,
    /// Where it came from.
    pub via: Via,
}

/// The credential of a request: the bearer token, else (on `GET` only) an `access_token`
/// query parameter, else the session cookie. A link token in the URL outranks the cookie: an
/// embedded dashboard's live stream (EventSource cannot send headers) must read as the link
/// even in a browser that is also signed in to another tenant. `Err` when an `Authorization` header is there but
/// is not `Bearer <token>`.
pub fn presented(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<Presented>, &'static str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().map_err(|_| "`Authorization` is not text")?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or("`Authorization` must be `Bearer <key>`")?;
        return Ok(Some(Presented {
            token: token.to_owned(),
            via: Via::Bearer,
        }));
    }
    if method == Method::GET {
        if let Some(token) = query_param(uri, "access_token") {
            return Ok(Some(Presented {
                token,
                via: Via::QueryToken,
            }));
        }
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        return Ok(Some(Presented {
            token,
            via: Via::Cookie,
        }));
    }
    Ok(None)
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// The CSRF rule for requests authenticated by the session cookie: a state-changing request
/// must come from this site's own pages, which browsers prove with `Sec-Fetch-Site:
/// same-origin` or an `Origin` whose host is the request's `Host`. Another site can make a
/// browser send the cookie (SameSite=Strict already stops most of that) but cannot forge
/// these headers.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_bearer_wins_then_a_get_token_then_the_cookie() {
        let uri: Uri = "/v1/dashboards/d/stream?access_token=rtl_x&tenant_id=t"
            .parse()
            .unwrap();
        let both = headers(&[
            ("authorization", "Bearer rtd_a"),
            ("cookie", "x=1; rtdash_session=s.1.m"),
        ]);
        let got = presented(&Method::GET, &uri, &both).unwrap().unwrap();
        assert_eq!((got.token.as_str(), got.via), ("rtd_a", Via::Bearer));
        let cookie_only = headers(&[("cookie", "x=1; rtdash_session=s.1.m")]);
        let got = presented(&Method::GET, &uri, &cookie_only)
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.token.as_str(), got.via),
            ("rtl_x", Via::QueryToken),
            "a link token in the URL outranks the session cookie"
        );
        let plain: Uri = "/v1/dashboards/d/stream?tenant_id=t".parse().unwrap();
        let got = presented(&Method::GET, &plain, &cookie_only)
            .unwrap()
            .unwrap();
        assert_eq!((got.token.as_str(), got.via), ("s.1.m", Via::Cookie));
        let got = presented(&Method::GET, &uri, &HeaderMap::new())
            .unwrap()
            .unwrap();
        assert_eq!((got.token.as_str(), got.via), ("rtl_x", Via::QueryToken));
        assert!(presented(&Method::POST, &uri, &HeaderMap::new())
            .unwrap()
            .is_none());
        let basic = headers(&[("authorization", "Basic eDp5")]);
        assert!(presented(&Method::GET, &uri, &basic).is_err());
    }

    #[test]
    fn cookie_changes_need_a_same_origin_proof() {
        let post = Method::POST;
        assert!(same_origin(&Method::GET, &HeaderMap::new()));
        assert!(!same_origin(&post, &HeaderMap::new()));
        assert!(same_origin(
            &post,
            &headers(&[("sec-fetch-site", "same-origin")])
        ));
        assert!(!same_origin(
            &post,
            &headers(&[("sec-fetch-site", "cross-site")])
        ));
        let good = headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(same_origin(&post, &good));
        let evil = headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(!same_origin(&post, &evil));
    }
}
