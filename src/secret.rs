//! Secrets from configuration (passwords, tokens, webhook URLs): never printed.
//!
//! `Debug`, `Display` and `Serialize` all produce `<secret>`; the value is reachable only
//! through [`Secret::expose`], so a secret cannot end up in a log line or API answer by
//! accident.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Read;
use std::path::Path;
use subtle::ConstantTimeEq;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

pub const REDACTED: &str = "<secret>";

/// Largest `*_file` secret read: a token, password or URL is far smaller, and a path that
/// points at a big file by mistake is a configuration error, not something to load.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Read the `*_file` secret `p` (relative to `base` unless absolute) for the key `what`,
/// trimmed of surrounding whitespace (a trailing newline); errors name the key and the path.
pub fn read_file(base: &Path, p: &Path, what: &str) -> Result<Secret, String> {
    let full = base.join(p);
    let cannot = |e: std::io::Error| format!("{what}: cannot read {}: {e}", full.display());
    let mut s = String::new();
    std::fs::File::open(&full)
        .and_then(|f| f.take(MAX_SECRET_FILE + 1).read_to_string(&mut s))
        .map_err(cannot)?;
    if s.len() as u64 > MAX_SECRET_FILE {
        return Err(format!(
            "{what}: {} is larger than {} KiB; it must hold only the secret",
            full.display(),
            MAX_SECRET_FILE / 1024
        ));
    }
    Ok(Secret::new(s.trim()))
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison: both sides are hashed first so that neither the content
    /// nor the length of the secret leaks through timing.
    pub fn ct_eq(&self, candidate: &[u8]) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(candidate);
        a.ct_eq(&b).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Replace every occurrence of each secret in `text` by `<secret>` (for error messages
/// from libraries that may echo a URL or credential back).
pub fn redact(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.0.len() >= 4 {
            out = out.replace(&s.0, REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<secret> <secret>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<secret>\"");
        assert!(s.ct_eq(b"hunter2"));
        assert!(!s.ct_eq(b"hunter3"));
        assert!(!s.ct_eq(b""));
        assert_eq!(
            redact("GET https://x/hunter2 failed", &[&s]),
            "GET https://x/<secret> failed"
        );
    }

    #[test]
    fn secret_files_are_trimmed_bounded_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        let s = read_file(dir.path(), Path::new("token"), "bot_token_file").unwrap();
        assert_eq!(s.expose(), "s3cret");
        // absolute paths are taken as they are
        let abs = dir.path().join("token");
        let s = read_file(Path::new("/elsewhere"), &abs, "bot_token_file").unwrap();
        assert_eq!(s.expose(), "s3cret");
        let e = read_file(dir.path(), Path::new("missing"), "bot_token_file").unwrap_err();
        assert!(
            e.starts_with("bot_token_file: cannot read ") && e.contains("missing"),
            "{e}"
        );
        std::fs::write(dir.path().join("big"), vec![b'x'; 65 * 1024]).unwrap();
        let e = read_file(dir.path(), Path::new("big"), "credentials_file").unwrap_err();
        assert!(
            e.contains("credentials_file") && e.contains("larger than 64 KiB"),
            "{e}"
        );
        std::fs::write(dir.path().join("edge"), vec![b'y'; 64 * 1024]).unwrap();
        assert!(read_file(dir.path(), Path::new("edge"), "k").is_ok());
    }
}
