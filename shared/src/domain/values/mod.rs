//! Validated values. Each is a type with a private field and one `parse` holding its
//! rules, so a value that exists is valid and nobody checks it again. Serde goes through
//! `parse` too (`try_from`), and the stored and JSON form stays the plain string.
//! The messages are the API's field errors, word for word as the form's rules gave them
//! before they moved here (end-to-end tests compare them); the caller names the field.

/// The conversions every string value has alike: `AsRef<str>`, `Display` (the text),
/// `Debug` (the text in a tuple named after the type; `no_debug` for a type that writes
/// its own), `TryFrom<String>` through `parse`, `From<T> for String` moving the text
/// out of field `$f`, and comparison with a `str` (the text). The type provides `parse(&str)` and `as_str()`.
macro_rules! string_value {
    ($t:ident . $f:tt) => {
        string_value!($t.$f, no_debug);
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_tuple(stringify!($t)).field(&self.as_str()).finish()
            }
        }
    };
    ($t:ident . $f:tt, no_debug) => {
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.$f
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

pub mod access_key_id;
pub mod account_id;
pub mod bucket_name;
pub mod group;
pub mod integration_id;
pub mod partition;
pub mod role;
pub mod secret_access_key;
pub mod session;
pub mod text;
pub mod timestamp;

pub use access_key_id::{mask_key_id, AccessKeyId};
pub use account_id::AccountId;
pub use bucket_name::BucketName;
pub use group::GroupName;
pub use integration_id::IntegrationId;
pub use partition::{Partition, Region};
pub use role::{check_external_id_needs_role, ExternalId, PrincipalArn, RoleName};
pub use secret_access_key::SecretAccessKey;
pub use session::SessionDuration;
pub use text::{normalise_label, Description, IntegrationName, Label};
pub use timestamp::Timestamp;
