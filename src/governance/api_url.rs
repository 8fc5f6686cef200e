//! Where the operator may send a Clerk secret key. Anyone who may create a ClerkInstance names
//! a key Secret of that namespace and an `apiUrl`: without this check they could have the
//! operator send the key to a host of their choosing, or probe the network from its Pod.

/// Clerk's own Backend API host, the default and usually the only one allowed.
pub const CLERK_API_HOST: &str = "api.clerk.com";

/// The hosts the operator may call, and whether plain http is allowed (tests and demos only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiUrlPolicy {
    /// Host names (or IP addresses) compared exactly, case-insensitively; any port.
    pub hosts: Vec<String>,
    pub allow_http: bool,
}

impl Default for ApiUrlPolicy {
    fn default() -> Self {
        Self {
            hosts: vec![CLERK_API_HOST.into()],
            allow_http: false,
        }
    }
}

impl ApiUrlPolicy {
    /// May a key be sent to `api_url`? The error says why, without echoing credentials that
    /// a URL could carry (user info, query).
    pub fn check(&self, api_url: &str) -> Result<(), String> {
        let url = reqwest::Url::parse(api_url)
            .map_err(|e| format!("spec.apiUrl is not a valid URL ({e})"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(
                    "spec.apiUrl must use https: the operator sends the secret key to it".into(),
                );
            }
            other => return Err(format!("spec.apiUrl has scheme {other}; it must be https")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("spec.apiUrl must not carry a user name or password".into());
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if self.hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
            Ok(())
        } else {
            Err(format!(
                "spec.apiUrl host {host} is not one the operator may send a key to (allowed: {}); \
                 the operator's --clerk-api-hosts sets the list",
                self.hosts.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_to_clerk_by_default() {
        let policy = ApiUrlPolicy::default();
        assert!(policy.check("https://api.clerk.com/v1").is_ok());
        assert!(policy.check("https://API.Clerk.com:443/v1").is_ok());
        let other = policy.check("https://evil.example/v1").unwrap_err();
        assert!(
            other.contains("evil.example") && other.contains("api.clerk.com"),
            "{other}"
        );
        assert!(
            policy
                .check("http://api.clerk.com/v1")
                .unwrap_err()
                .contains("https")
        );
        // A look-alike is another host.
        assert!(
            policy
                .check("https://api.clerk.com.evil.example/v1")
                .is_err()
        );
        assert!(policy.check("ftp://api.clerk.com/v1").is_err());
    }

    #[test]
    fn credentials_in_a_url_are_refused_and_not_echoed() {
        let policy = ApiUrlPolicy::default();
        let error = policy
            .check("https://user:sk_live_secret@api.clerk.com/v1")
            .unwrap_err();
        assert!(!error.contains("sk_live_secret"), "{error}");
    }

    #[test]
    fn plain_http_only_behind_the_flag() {
        let local = ApiUrlPolicy {
            hosts: vec!["127.0.0.1".into()],
            allow_http: true,
        };
        assert!(local.check("http://127.0.0.1:8080/v1").is_ok());
        assert!(local.check("http://10.0.0.1:8080/v1").is_err());
    }
}
