//! API versions, negotiated as Docker's are: the server names its newest
//! version in every answer's `Api-Version` header (and in `/_ping`), the
//! client uses the lower of that and its own, and each request names its
//! version in the path (`/v1.49/services`). A path without one is served at
//! the newest.

use std::fmt;

use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// An Engine API version, `1.49`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Always 1 so far.
    pub major: u16,
    /// The minor number.
    pub minor: u16,
}

impl ApiVersion {
    /// The oldest version served.
    pub const MIN: Self = Self {
        major: 1,
        minor: 41,
    };
    /// The newest version served, the one advertised.
    pub const MAX: Self = Self {
        major: 1,
        minor: 49,
    };
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for ApiVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (major, minor) = s
            .split_once('.')
            .ok_or_else(|| format!("{s:?} is not an API version such as 1.49"))?;
        let number = |n: &str| {
            n.parse::<u16>()
                .map_err(|_| format!("{s:?} is not an API version such as 1.49"))
        };
        Ok(Self {
            major: number(major)?,
            minor: number(minor)?,
        })
    }
}

/// Takes the `/vX.Y` prefix off the path (so that one set of routes serves
/// every version), refuses a version out of range as Docker does, keeps
/// the version in the request's extensions, and names the newest version
/// and the OS in every answer.
pub async fn negotiate(mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut version = ApiVersion::MAX;
    let versioned = path
        .strip_prefix("/v")
        .map(|rest| rest.split_once('/').unwrap_or((rest, "")))
        .filter(|(v, _)| v.starts_with(|c: char| c.is_ascii_digit()));
    if let Some((v, tail)) = versioned {
        match v.parse::<ApiVersion>() {
            Ok(v) => version = v,
            Err(e) => return with_headers(ApiError::bad_request(e).into_response()),
        }
        if version < ApiVersion::MIN {
            return with_headers(
                ApiError::bad_request(format!(
                    "client version {version} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
                    ApiVersion::MIN
                ))
                .into_response(),
            );
        }
        if version > ApiVersion::MAX {
            return with_headers(
                ApiError::bad_request(format!(
                    "client version {version} is too new. Maximum supported API version is {}",
                    ApiVersion::MAX
                ))
                .into_response(),
            );
        }
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let uri: Option<Uri> = format!("/{tail}{query}").parse().ok();
        if let Some(uri) = uri {
            *request.uri_mut() = uri;
        }
    }
    request.extensions_mut().insert(version);
    with_headers(next.run(request).await)
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ApiVersion::MAX.to_string()) {
        headers.insert("Api-Version", v);
    }
    headers.insert("Ostype", HeaderValue::from_static("linux"));
    headers.insert("Docker-Experimental", HeaderValue::from_static("false"));
    headers.insert(
        "Server",
        HeaderValue::from_static(concat!("swarmd/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_compare_and_print() {
        let v: ApiVersion = "1.49".parse().unwrap();
        assert_eq!(v, ApiVersion::MAX);
        assert!("1.24".parse::<ApiVersion>().unwrap() < ApiVersion::MIN);
        assert!("1.100".parse::<ApiVersion>().unwrap() > ApiVersion::MAX);
        assert_eq!(ApiVersion::MIN.to_string(), "1.41");
        assert!("1".parse::<ApiVersion>().is_err());
        assert!("1.x".parse::<ApiVersion>().is_err());
    }
}
