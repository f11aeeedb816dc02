//! The authentication step: finds the caller's credential and proves it, with keys or OIDC.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, header};

use crate::keys::{KEY_PREFIX, KeyStore};
use crate::oidc::OidcVerifier;
use crate::{AuthError, Identity};

/// Largest credential looked at; anything longer is refused before parsing.
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

/// Authenticates requests against gateway-issued keys and the configured OIDC issuers.
#[derive(Debug)]
pub struct Authenticator {
    keys: Arc<KeyStore>,
    oidc: Arc<OidcVerifier>,
    roles: config::RolesConfig,
}

impl Authenticator {
    /// Combines the key store, the OIDC verifier and the `[roles]` map.
    pub fn new(keys: Arc<KeyStore>, oidc: Arc<OidcVerifier>, roles: config::RolesConfig) -> Authenticator {
        Authenticator { keys, oidc, roles }
    }

    /// The key store.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Authenticates a request from its headers and source address.
    pub async fn authenticate(&self, headers: &HeaderMap, src_ip: Option<IpAddr>) -> Result<Identity, AuthError> {
        let credential = credential(headers)?;
        let mut id = if credential.starts_with(KEY_PREFIX) {
            self.keys.verify(credential)?
        } else if credential.bytes().filter(|b| *b == b'.').count() == 2 {
            if self.oidc.is_empty() {
                return Err(AuthError::UnknownIssuer);
            }
            self.oidc.verify(credential).await?
        } else {
            return Err(AuthError::Malformed("neither a modelgate key nor a JWT"));
        };
        id.apply_role_map(&self.roles);
        id.src_ip = src_ip;
        id.user_agent =
            headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
        Ok(id)
    }
}

/// The presented credential: `Authorization: Bearer …`, else `x-api-key`.
pub fn credential(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (auth.next(), auth.next()) {
        (Some(_), Some(_)) => return Err(AuthError::Malformed("more than one Authorization header")),
        (Some(v), None) => {
            if v.len() > MAX_CREDENTIAL_BYTES + 7 {
                return Err(AuthError::TooLarge(v.len()));
            }
            let v = v.to_str().map_err(|_| AuthError::Malformed("Authorization is not text"))?;
            let (scheme, rest) = v.split_once(' ').ok_or(AuthError::Malformed("Authorization without a scheme"))?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(AuthError::Malformed("Authorization scheme is not Bearer"));
            }
            rest.trim()
        }
        (None, _) => match headers.get("x-api-key") {
            Some(v) => v.to_str().map_err(|_| AuthError::Malformed("x-api-key is not text"))?.trim(),
            None => return Err(AuthError::Missing),
        },
    };
    if value.is_empty() {
        return Err(AuthError::Missing);
    }
    if value.len() > MAX_CREDENTIAL_BYTES {
        return Err(AuthError::TooLarge(value.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn credentials_are_found_and_bounded() {
        assert_eq!(credential(&h(&[("authorization", "Bearer mgk_a_b")])), Ok("mgk_a_b"));
        assert_eq!(credential(&h(&[("authorization", "bearer  x.y.z ")])), Ok("x.y.z"));
        assert_eq!(credential(&h(&[("x-api-key", "mgk_a_b")])), Ok("mgk_a_b"));
        assert_eq!(credential(&h(&[])), Err(AuthError::Missing));
        assert_eq!(credential(&h(&[("authorization", "Bearer ")])), Err(AuthError::Missing));
        assert!(matches!(credential(&h(&[("authorization", "Basic YTpi")])), Err(AuthError::Malformed(_))));
        assert!(matches!(
            credential(&h(&[("authorization", "Bearer a"), ("authorization", "Bearer b")])),
            Err(AuthError::Malformed(_))
        ));
        let big = format!("Bearer {}", "a".repeat(64 * 1024));
        assert!(matches!(credential(&h(&[("authorization", &big)])), Err(AuthError::TooLarge(_))));
    }
}
