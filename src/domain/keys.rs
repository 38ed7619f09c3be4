//! API keys and who a request acts as. Keys are random 256-bit tokens; only
//! their SHA-256 is stored. A slow password hash buys nothing for a
//! high-entropy token and would cost a hash per request.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{timestamp, validation::FieldError};

/// Scopes are ordered: `admin` includes `write`, which includes `read`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

/// A scope given as text (a form field), read by the same parser as the
/// API's JSON (serde's, from the derive above), so both accept exactly the
/// same names.
impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        use serde::de::value::{Error, StrDeserializer};
        Scope::deserialize(StrDeserializer::<Error>::new(s)).map_err(|e| e.to_string())
    }
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The first characters of the key, to tell keys apart in a list.
    pub prefix: String,
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
}

/// The answer to a key creation: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The secret: store it now, it cannot be shown again.
    pub key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyRequest {
    /// 1 to 100 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
}

pub const KEY_PREFIX: &str = "nk_";
const MAX_KEY_NAME_CHARS: usize = 100;

impl KeyRequest {
    pub fn validate(self) -> Result<(String, Vec<Scope>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let chars = self.name.chars().count();
        if self.name.trim().is_empty() || chars > MAX_KEY_NAME_CHARS {
            errors.push(FieldError::new(
                "name",
                format!("must be 1 to {MAX_KEY_NAME_CHARS} characters"),
            ));
        } else if self.name.chars().any(char::is_control) {
            errors.push(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        if self.scopes.is_empty() {
            errors.push(FieldError::new(
                "scopes",
                "at least one of read, write, admin",
            ));
        }
        let mut scopes = self.scopes;
        scopes.sort();
        scopes.dedup();
        if errors.is_empty() {
            Ok((self.name, scopes))
        } else {
            Err(errors)
        }
    }
}

/// A key made from a valid request: what to store (its hash) and the
/// answer that shows its secret once.
pub struct IssuedKey {
    pub created: CreatedKey,
    pub hash: String,
}

impl KeyRequest {
    /// Validates the request and generates its key.
    pub fn issue(self) -> Result<IssuedKey, Vec<FieldError>> {
        let (name, scopes) = self.validate()?;
        let generated = generate_key();
        Ok(IssuedKey {
            created: CreatedKey {
                api_key: ApiKey {
                    id: Uuid::now_v7(),
                    name,
                    scopes,
                    prefix: generated.prefix,
                    created_at: timestamp::now(),
                },
                key: generated.secret,
            },
            hash: generated.hash,
        })
    }
}

/// A freshly generated key: the secret to show once and what to store.
pub struct GeneratedKey {
    pub secret: String,
    pub hash: String,
    pub prefix: String,
}

pub fn generate_key() -> GeneratedKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    GeneratedKey {
        hash: hash_key(&secret),
        prefix: secret[..KEY_PREFIX.len() + 6].to_owned(),
        secret,
    }
}

pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Development mode: no key needed, everything allowed.
    Development,
    /// The master key: manages keys, may do everything.
    Master,
    Key {
        id: Uuid,
        scopes: Vec<Scope>,
    },
}

impl Principal {
    /// How a change it makes is recorded (a revision's `changed_by`): the
    /// key's id, `master` or `dev`.
    pub fn actor(&self) -> String {
        match self {
            Principal::Development => "dev".into(),
            Principal::Master => "master".into(),
            Principal::Key { id, .. } => id.to_string(),
        }
    }

    pub fn has(&self, needed: Scope) -> bool {
        match self {
            Principal::Development | Principal::Master => true,
            Principal::Key { scopes, .. } => scopes.iter().any(|s| *s >= needed),
        }
    }
    pub fn is_master(&self) -> bool {
        matches!(self, Principal::Development | Principal::Master)
    }
}

/// Compares digests, not the secrets themselves, so the time taken says
/// nothing about how much of a guess was right.
pub fn matches_master(candidate: &str, master: &str) -> bool {
    Sha256::digest(candidate.as_bytes())
        .ct_eq(&Sha256::digest(master.as_bytes()))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_parses_from_text_as_from_json() {
        for scope in [Scope::Read, Scope::Write, Scope::Admin] {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
            let json: Scope = serde_json::from_str(&format!("\"{}\"", scope.as_str())).unwrap();
            assert_eq!(json, scope);
        }
        for bad in ["", "Read", "root", "read "] {
            assert!(bad.parse::<Scope>().is_err(), "{bad:?}");
            assert!(serde_json::from_str::<Scope>(&format!("{bad:?}")).is_err());
        }
    }

    #[test]
    fn scopes_are_hierarchical() {
        let p = Principal::Key {
            id: Uuid::nil(),
            scopes: vec![Scope::Write],
        };
        assert!(p.has(Scope::Read) && p.has(Scope::Write) && !p.has(Scope::Admin));
        assert!(!p.is_master());
        assert!(Principal::Master.has(Scope::Admin));
    }

    #[test]
    fn generated_keys_are_unique_and_hash_matches() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), KEY_PREFIX.len() + 64);
        assert_eq!(hash_key(&a.secret), a.hash);
        assert!(a.secret.starts_with(&a.prefix));
    }

    #[test]
    fn master_comparison() {
        assert!(matches_master("x".repeat(40).as_str(), &"x".repeat(40)));
        assert!(!matches_master("y", &"x".repeat(40)));
    }

    #[test]
    fn key_request_validation() {
        let ok = KeyRequest {
            name: "ci".into(),
            scopes: vec![Scope::Write, Scope::Read, Scope::Read],
        };
        assert_eq!(ok.validate().unwrap().1, vec![Scope::Read, Scope::Write]);
        let bad = KeyRequest {
            name: "".into(),
            scopes: vec![],
        };
        assert_eq!(bad.validate().unwrap_err().len(), 2);
    }
}
