//! Bearer tokens: the tokens file (`--tokens FILE`, written by `meshctl token create`), and deciding
//! who may do what.
//!
//! The file holds only the SHA-256 of each token. Tokens are 32 random bytes, so an unsalted fast hash
//! is enough: nobody can search 2^256 candidates. Hashes are compared in constant time, and neither a
//! token nor its hash is ever written to a log or an error message.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::load::{self, de, yaml};

/// What every token starts with, so a leaked one is easy to recognise (and to scan for).
pub const TOKEN_PREFIX: &str = "mshc_";

/// What a token may do. `read`: GET (get, list, watch); `write`: POST, PUT, DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Read,
    Write,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Read => "read",
            Verb::Write => "write",
        }
    }
}

/// One entry of the tokens file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub sha256: String,
    pub namespaces: Vec<String>,
    pub verbs: Vec<Verb>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// Who made a request: a token's entry. (Its `Debug` leaves the hash out.)
#[derive(Clone)]
pub struct Principal {
    pub name: String,
    hash: [u8; 32],
    all_namespaces: bool,
    namespaces: Vec<String>,
    read: bool,
    write: bool,
}

impl Principal {
    /// Whether this token may use `verb` in `namespace` (None: every namespace, which needs `"*"`).
    pub fn allows(&self, verb: Verb, namespace: Option<&str>) -> bool {
        let verb_ok = match verb {
            Verb::Read => self.read,
            Verb::Write => self.write,
        };
        let namespace_ok = self.all_namespaces || namespace.is_some_and(|ns| self.namespaces.iter().any(|n| n == ns));
        verb_ok && namespace_ok
    }
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("name", &self.name)
            .field("namespaces", &self.namespaces)
            .field("read", &self.read)
            .field("write", &self.write)
            .finish_non_exhaustive()
    }
}

/// The tokens the server accepts.
#[derive(Debug, Default)]
pub struct Tokens {
    principals: Vec<Arc<Principal>>,
}

impl Tokens {
    /// The entry a presented token belongs to. Every entry is compared (in constant time), so the time
    /// taken does not say which entry, or how much of a hash, matched.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Principal>> {
        let presented = hash(token);
        let mut found = None;
        for p in &self.principals {
            let equal: bool = p.hash.ct_eq(&presented).into();
            if equal && found.is_none() {
                found = Some(p.clone());
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.principals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.principals.is_empty()
    }
}

/// SHA-256 of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// A new token: `mshc_` and 32 random bytes, base64url without padding.
pub fn generate() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Whether a token name is acceptable: 1-63 of letters, digits, `-`, `_`, `.`, starting with a letter
/// or digit (so it reads well in logs and needs no quoting in YAML).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether a namespace entry is `"*"` or a namespace name.
pub fn valid_namespace(ns: &str) -> bool {
    ns == "*" || crate::validate::common::is_dns1123_label(ns)
}

/// Reads and checks a tokens file. Errors name the file, and the entry (by index and name) when the
/// problem is in one.
pub fn load_file(path: &Path) -> Result<Tokens, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read the tokens file {}: {e}", path.display()))?;
    let entries = parse(path, &bytes)?;
    let mut principals = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        // Checked by `parse`.
        let Some(hash) = unhex(&e.sha256) else {
            return Err(format!("{}: tokens[{i}]: sha256 is not valid", path.display()));
        };
        principals.push(Arc::new(Principal {
            all_namespaces: e.namespaces.iter().any(|n| n == "*"),
            read: e.verbs.contains(&Verb::Read),
            write: e.verbs.contains(&Verb::Write),
            namespaces: e.namespaces,
            name: e.name,
            hash,
        }));
    }
    Ok(Tokens { principals })
}

/// Parses a tokens file's contents with the project's YAML loader and checks every entry.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<TokenEntry>, String> {
    let file = path.display();
    let src = load::decode(bytes).map_err(|p| format!("{file}: {}", p.message))?;
    let arena = bumpalo::Bump::new();
    let stream = yaml::parse_stream(src, &arena, yaml::Limits::default());
    if let Some(p) = stream.problems.first() {
        return Err(located(&file.to_string(), p));
    }
    if stream.documents.len() > 1 {
        return Err(format!(
            "{file}: expected one YAML document, found {}",
            stream.documents.len()
        ));
    }
    let Some(root) = stream
        .documents
        .first()
        .and_then(|d| d.root.as_ref())
        .filter(|r| !r.is_null())
    else {
        return Ok(Vec::new());
    };
    let ctx = de::Ctx::new(&[], 0);
    let parsed = de::from_node::<TokensFile>(root, &ctx);
    let problems = ctx.into_problems();
    if let Some(p) = problems.first() {
        return Err(located(&file.to_string(), p));
    }
    let Some(parsed) = parsed else {
        return Err(format!("{file}: expected a mapping with a `tokens` list"));
    };
    let mut names = std::collections::HashSet::new();
    let mut hashes = std::collections::HashSet::new();
    for (i, e) in parsed.tokens.iter().enumerate() {
        let at = format!("{file}: tokens[{i}]");
        if !valid_name(&e.name) {
            return Err(format!(
                "{at}: name `{}` is not valid: use 1-63 letters, digits, '-', '_' or '.'",
                e.name
            ));
        }
        let at = format!("{at} (`{}`)", e.name);
        if !names.insert(e.name.as_str()) {
            return Err(format!(
                "{at}: the name is used by an earlier entry; names must be unique"
            ));
        }
        // The hash itself is never echoed.
        let Some(h) = unhex(&e.sha256) else {
            return Err(format!("{at}: sha256 must be 64 hexadecimal digits"));
        };
        if !hashes.insert(h) {
            return Err(format!("{at}: the same token hash is listed by an earlier entry"));
        }
        if e.namespaces.is_empty() {
            return Err(format!(
                "{at}: namespaces is empty; list namespaces, or [\"*\"] for all"
            ));
        }
        if let Some(bad) = e.namespaces.iter().find(|n| !valid_namespace(n)) {
            return Err(format!(
                "{at}: namespace `{bad}` is not valid: a DNS-1123 label, or \"*\" for every namespace"
            ));
        }
        if e.verbs.is_empty() {
            return Err(format!("{at}: verbs is empty; use [read], [write] or [read, write]"));
        }
    }
    Ok(parsed.tokens)
}

fn located(file: &str, p: &load::Problem) -> String {
    let mut out = file.to_string();
    if let Some(span) = p.span {
        out.push_str(&format!(":{}:{}", span.start.line, span.start.column));
    }
    out.push_str(": ");
    if let Some(field) = p.field.as_deref().filter(|f| !f.is_empty()) {
        out.push_str(field);
        out.push_str(": ");
    }
    out.push_str(&p.message);
    if let Some(help) = &p.help {
        out.push_str(": ");
        out.push_str(help);
    }
    out
}

/// Why `add_entry` failed.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The name is in the file already.
    #[error("a token named `{name}` already exists in {file}: choose another name")]
    NameTaken { name: String, file: String },
    /// The file could not be read, parsed or written.
    #[error("{0}")]
    File(String),
}

/// Adds an entry to a tokens file (created when missing), keeping the other entries. The file is
/// replaced atomically: written to a temporary file (mode 0600) in the same directory, synced, and
/// renamed over the old one, so a crash leaves either the old file or the new one. Comments in the
/// old file are not kept.
pub fn add_entry(path: &Path, entry: TokenEntry) -> Result<(), AddError> {
    let file = path.display().to_string();
    let mut tokens = match fs::read(path) {
        Ok(bytes) => {
            parse(path, &bytes).map_err(AddError::File)?;
            // Keep the entries as written (and checked), through the JSON view of the file.
            let src = load::decode(&bytes).map_err(|p| AddError::File(format!("{file}: {}", p.message)))?;
            let arena = bumpalo::Bump::new();
            let stream = yaml::parse_stream(src, &arena, yaml::Limits::default());
            match stream.documents.first().and_then(|d| d.root.as_ref()) {
                Some(root) => match load::emit::node_to_json(root) {
                    serde_json::Value::Object(mut map) => match map.remove("tokens") {
                        Some(serde_json::Value::Array(items)) => items,
                        _ => Vec::new(),
                    },
                    _ => Vec::new(),
                },
                None => Vec::new(),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(AddError::File(format!("cannot read the tokens file {file}: {e}"))),
    };
    if tokens
        .iter()
        .any(|t| t.get("name").and_then(|n| n.as_str()) == Some(entry.name.as_str()))
    {
        return Err(AddError::NameTaken { name: entry.name, file });
    }
    let value = serde_json::to_value(&entry).map_err(|e| AddError::File(e.to_string()))?;
    tokens.push(value);
    let mut text =
        String::from("# meshctl serve --tokens: API tokens (only their SHA-256), written by `meshctl token create`.\n");
    text.push_str(&load::emit::to_yaml(&serde_json::json!({ "tokens": tokens })));
    write_atomically(path, text.as_bytes())
        .map_err(|e| AddError::File(format!("cannot write the tokens file {file}: {e}")))
}

/// Writes `contents` to `path` through a temporary file in the same directory (mode 0600), fsync and
/// rename, then syncs the directory so the rename itself is durable.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), hex(&suffix)));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Durable rename; a directory that cannot be opened for syncing is not an error worth failing for.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let h = hash("test");
        assert_eq!(
            hex(&h),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(unhex(&hex(&h)), Some(h));
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn generated_tokens_are_distinct_and_prefixed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
    }

    #[test]
    fn parse_checks_entries_and_names_them() {
        let p = Path::new("t.yaml");
        let ok = format!(
            "tokens:\n- name: ci\n  sha256: {}\n  namespaces: [a]\n  verbs: [read]\n",
            hex(&hash("x"))
        );
        assert_eq!(parse(p, ok.as_bytes()).unwrap().len(), 1);
        let bad = "tokens:\n- name: ci\n  sha256: abc\n  namespaces: [a]\n  verbs: [read]\n";
        let e = parse(p, bad.as_bytes()).unwrap_err();
        assert!(e.contains("t.yaml: tokens[0] (`ci`)"), "{e}");
        let unknown = "tokens:\n- name: ci\n  sha: abc\n";
        let e = parse(p, unknown.as_bytes()).unwrap_err();
        assert!(e.starts_with("t.yaml:3:3: tokens[0].sha: unknown field"), "{e}");
        assert!(e.contains("sha256"), "{e}");
        let verb = format!(
            "tokens:\n- name: ci\n  sha256: {}\n  namespaces: [a]\n  verbs: [admin]\n",
            hex(&hash("x"))
        );
        assert!(parse(p, verb.as_bytes()).is_err());
    }

    #[test]
    fn principals_allow_by_verb_and_namespace() {
        let p = Principal {
            name: "x".into(),
            hash: [0; 32],
            all_namespaces: false,
            namespaces: vec!["a".into()],
            read: true,
            write: false,
        };
        assert!(p.allows(Verb::Read, Some("a")));
        assert!(!p.allows(Verb::Read, Some("b")));
        assert!(!p.allows(Verb::Read, None));
        assert!(!p.allows(Verb::Write, Some("a")));
    }
}
