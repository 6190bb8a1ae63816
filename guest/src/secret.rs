//! Newtypes for secrets, so that no `Debug`, error or log line can print one.

/// Declares a newtype over `String` whose `Debug` prints `Name([redacted])`.
///
/// There is deliberately no `Display`: reaching the value takes an explicit `.secret()`.
/// The plain form is `Clone` and serializes as a string (for the session store); the
/// `single_use` form is neither, for values that must be spent once (an authorization
/// code, a PKCE verifier), so the type system keeps them from being copied around.
macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $crate::secret::secret_type!(@define
            $(#[$meta])*
            #[derive(Clone, serde::Serialize, serde::Deserialize)]
            #[serde(transparent)]
            $name
        );
    };
    (single_use $(#[$meta:meta])* $name:ident) => {
        $crate::secret::secret_type!(@define $(#[$meta])* $name);
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
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

pub(crate) use secret_type;

secret_type!(
    /// A private key in PEM form.
    PrivateKeyPem
);

#[cfg(test)]
mod tests {
    use super::*;

    secret_type!(
        /// A test secret.
        Sample
    );

    #[test]
    fn debug_output_never_shows_the_secret() {
        let value = Sample::new("hunter2");
        assert_eq!(format!("{value:?}"), "Sample([redacted])");
        assert_eq!(
            format!("{:?}", Some(PrivateKeyPem::new("-----BEGIN"))),
            "Some(PrivateKeyPem([redacted]))"
        );
        assert_eq!(value.secret(), "hunter2");
    }
}
