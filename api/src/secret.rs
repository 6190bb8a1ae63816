//! Newtypes for secrets, so that no `Debug`, error or log line can print one.

/// Declares a newtype over `String` whose `Debug` prints `Name([redacted])`.
///
/// There is deliberately no `Display`: reaching the value takes an explicit `.secret()`.
/// The plain form is `Clone` and serializes as a string (sessions keep tokens in the
/// host's store); the `single_use` form is neither, for values that must be spent once
/// (an authorization code, a PKCE verifier), so the type system keeps them from being
/// copied around.
#[macro_export]
macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $crate::secret_type!(@define
            $(#[$meta])*
            #[derive(Clone, $crate::secret::serde::Serialize, $crate::secret::serde::Deserialize)]
            #[serde(crate = "gateway_auth_api::secret::serde", transparent)]
            $name
        );
    };
    (single_use $(#[$meta:meta])* $name:ident) => {
        $crate::secret_type!(@define $(#[$meta])* $name);
    };
    (@define $(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself: call this only where it is sent or stored.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// The secret itself, spending the wrapper.
            pub fn into_secret(self) -> String {
                self.0
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        impl From<&String> for $name {
            fn from(value: &String) -> Self {
                Self::new(value.as_str())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

#[doc(hidden)]
pub use serde;

// The macro names the crate by its package name, so that crates using it need no
// serde of their own; inside this crate that name needs an alias.
extern crate self as gateway_auth_api;

secret_type!(
    /// A private key in PEM form (PKCS#8, PKCS#1 or SEC1).
    PrivateKeyPem
);
secret_type!(
    /// A client secret (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// A resource owner's password (RFC 6749 §4.3).
    Password
);
secret_type!(
    /// An access token (RFC 6749 §1.4).
    AccessToken
);
secret_type!(
    /// A refresh token (RFC 6749 §1.5).
    RefreshToken
);
secret_type!(
    /// An OpenID Connect ID token.
    IdToken
);
secret_type!(
    /// The subject token of a token exchange (RFC 8693 §2.1).
    SubjectToken
);
secret_type!(
    /// The actor token of a token exchange (RFC 8693 §2.1).
    ActorToken
);
secret_type!(
    /// A signed JWT assertion, as a grant (RFC 7523 §2.1) or client authentication
    /// (RFC 7523 §2.2).
    Assertion
);
secret_type!(
    /// The device code of a device authorization (RFC 8628 §3.2).
    DeviceCode
);
secret_type!(
    single_use
    /// An authorization code. Not `Clone`: a code may be redeemed only once
    /// (RFC 6749 §4.1.2), so redeeming takes it by value.
    AuthorizationCode
);
secret_type!(
    single_use
    /// A PKCE code verifier (RFC 7636 §4.1). Not `Clone`: it belongs to exactly one
    /// authorization request.
    PkceCodeVerifier
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let value = ClientSecret::new("hunter2");
        assert_eq!(format!("{value:?}"), "ClientSecret([redacted])");
        assert_eq!(
            format!("{:?}", Some(PrivateKeyPem::new("-----BEGIN"))),
            "Some(PrivateKeyPem([redacted]))"
        );
        assert_eq!(
            format!("{:?}", AuthorizationCode::from("code-123")),
            "AuthorizationCode([redacted])"
        );
        assert_eq!(value.secret(), "hunter2");
    }

    #[test]
    fn reusable_secrets_serialize_as_plain_strings() {
        let token = RefreshToken::new("rt-1");
        assert_eq!(serde_json::to_string(&token).unwrap(), "\"rt-1\"");
        let back: RefreshToken = serde_json::from_str("\"rt-2\"").unwrap();
        assert_eq!(back.secret(), "rt-2");
    }
}
