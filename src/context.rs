//! Contexts: named stores with their credentials, like kubeconfig, in
//! `$XDG_CONFIG_HOME/meshctl/config.yaml`; and the choice of store for one command.
//!
//! Which store a command uses, first match wins: `--store` (or `MESHCTL_STORE`), `--context NAME`,
//! the current context of the config file, then the built-in `default` context, the embedded store at
//! `$XDG_DATA_HOME/meshctl/store.db` (created on first use, so a fresh machine needs nothing running).
//!
//! The file holds tokens, so it is written with mode 0600 in a 0700 directory, atomically (a temporary
//! file, fsynced, renamed over the old one): a crash leaves the old file or the new one, never half.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::remote::RemoteOptions;
use crate::store::{Location, Store, StoreError};

/// The built-in context: the embedded store. It is always there and cannot be removed or redefined.
pub const DEFAULT_CONTEXT: &str = "default";

/// The environment variable that gives a token for a remote store.
pub const TOKEN_ENV: &str = "MESHCTL_TOKEN";
/// The environment variable that names a CA bundle for `--store https://...` (contexts keep their own).
pub const CA_CERT_ENV: &str = "MESHCTL_CA_CERT";

/// The config file, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The context commands use when neither `--store` nor `--context` is given; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

/// One named store.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Context {
    pub name: String,
    /// `sqlite:PATH`, `https://HOST:PORT` or `http://127.0.0.1:PORT`.
    pub store: String,
    /// The bearer token for a remote store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A PEM file of CA certificates that the server's certificate must chain to (instead of the
    /// system's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// Never shows the token.
impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("name", &self.name)
            .field("store", &self.store)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

/// Why the config could not be used: each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ConfigError + 'a {
    move |source| ConfigError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

// === Paths ===

/// An XDG base directory: the variable when it holds an absolute path (the spec says to ignore
/// relative ones), else `$HOME/<fallback>`.
fn xdg_dir(var: &str, fallback: &str) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Ok(dir);
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(fallback)),
        None => Err(ConfigError::Usage(format!(
            "neither {var} nor HOME is set, so meshctl cannot tell where its files go: set HOME, or use --store"
        ))),
    }
}

/// `$XDG_CONFIG_HOME/meshctl/config.yaml`.
pub fn config_path() -> Result<PathBuf, ConfigError> {
    Ok(xdg_dir("XDG_CONFIG_HOME", ".config")?
        .join("meshctl")
        .join("config.yaml"))
}

/// `$XDG_DATA_HOME/meshctl/store.db`: the built-in context's store.
pub fn default_store_path() -> Result<PathBuf, ConfigError> {
    Ok(xdg_dir("XDG_DATA_HOME", ".local/share")?
        .join("meshctl")
        .join("store.db"))
}

// === Reading and writing ===

impl Config {
    /// Reads the config file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(io_error("read", path)(e)),
        };
        Config::parse(path, &bytes)
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let text = crate::load::decode(bytes).map_err(|p| invalid(p.message))?;
        let arena = bumpalo::Bump::new();
        let stream = crate::load::yaml::parse_stream(text, &arena, crate::load::Limits::default());
        if let Some(p) = stream.problems.first() {
            let at = p
                .span
                .map(|s| format!("{}:{}: ", s.start.line, s.start.column))
                .unwrap_or_default();
            return Err(invalid(format!("{at}{}", p.message)));
        }
        let mut roots = stream
            .documents
            .iter()
            .filter_map(|d| d.root.as_ref())
            .filter(|r| !r.is_null());
        let Some(root) = roots.next() else {
            return Ok(Config::default());
        };
        if roots.next().is_some() {
            return Err(invalid("expected one YAML document, found several".to_string()));
        }
        let value = crate::load::emit::node_to_json(root);
        let config: Config = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        config.check().map_err(invalid)?;
        Ok(config)
    }

    /// What a hand-edited file could get wrong.
    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for c in &self.contexts {
            if c.name.is_empty() {
                return Err("a context has an empty name".to_string());
            }
            if c.name == DEFAULT_CONTEXT {
                return Err(format!(
                    "context `{DEFAULT_CONTEXT}` is built in and cannot be redefined"
                ));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(format!("context `{}` is defined twice", c.name));
            }
            Location::parse(&c.store).map_err(|e| format!("context `{}`: store {e}", c.name))?;
        }
        Ok(())
    }

    /// Writes the file atomically with mode 0600, creating its directory with mode 0700.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("create the directory", dir))?;
        // The directory may predate meshctl with looser permissions; it holds tokens.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_error("set permissions on", dir))?;
        let value = serde_json::to_value(self).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let text = format!(
            "# meshctl contexts (meshctl context list|use|add|remove). Holds tokens: keep it private.\n{}",
            crate::load::emit::to_yaml(&value)
        );
        let tmp = dir.join(format!(".config.yaml.{}.tmp", std::process::id()));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_error("create", &tmp))?;
            file.write_all(text.as_bytes()).map_err(io_error("write", &tmp))?;
            file.sync_all().map_err(io_error("write", &tmp))?;
            fs::rename(&tmp, path).map_err(io_error("replace", path))?;
            // The rename itself must be durable too.
            if let Ok(d) = File::open(dir) {
                let _ignored = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ignored = fs::remove_file(&tmp);
        }
        result
    }

    pub fn find(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The current context's name (`default` when none is set).
    pub fn current(&self) -> &str {
        self.current_context.as_deref().unwrap_or(DEFAULT_CONTEXT)
    }

    /// Every context name, the built-in one first, for messages.
    pub fn names(&self) -> Vec<&str> {
        std::iter::once(DEFAULT_CONTEXT)
            .chain(self.contexts.iter().map(|c| c.name.as_str()))
            .collect()
    }
}

// === Choosing the store for a command ===

/// Where the chosen store came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--store` or `MESHCTL_STORE`.
    Flag,
    /// A named context (from `--context` or the current context).
    Context(String),
    /// The built-in `default` context.
    Default,
}

/// The store a command will use, and how to reach it.
#[derive(Debug, Clone)]
pub struct Selection {
    pub location: Location,
    pub options: RemoteOptions,
    pub source: Source,
}

/// Chooses the store: `store` (from `--store` or `MESHCTL_STORE`), then `context` (from
/// `--context`), then the config file's current context, then the built-in default.
///
/// Tokens: a context's own token, else `MESHCTL_TOKEN`; with `--store`, `MESHCTL_TOKEN` (and
/// `MESHCTL_CA_CERT` for a private CA).
pub fn select(store: Option<&str>, context: Option<&str>) -> Result<Selection, ConfigError> {
    let env_token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.trim().is_empty());
    if let Some(store) = store {
        let location = Location::parse(store).map_err(|e| ConfigError::Usage(format!("--store {e}")))?;
        return Ok(Selection {
            location,
            options: RemoteOptions {
                token: env_token.map(|t| t.trim().to_string()),
                ca_cert: std::env::var_os(CA_CERT_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from),
            },
            source: Source::Flag,
        });
    }
    let path = config_path()?;
    let config = Config::load(&path)?;
    let (name, from_flag) = match context {
        Some(name) => (name, true),
        None => (config.current(), false),
    };
    if name == DEFAULT_CONTEXT {
        return Ok(Selection {
            location: Location::Sqlite(default_store_path()?),
            options: RemoteOptions::default(),
            source: Source::Default,
        });
    }
    let Some(entry) = config.find(name) else {
        let known = config.names().join(", ");
        return Err(if from_flag {
            ConfigError::Usage(format!(
                "--context {name}: no such context in {} (contexts: {known})",
                path.display()
            ))
        } else {
            ConfigError::Invalid {
                path: path.display().to_string(),
                message: format!(
                    "the current context `{name}` is not defined (contexts: {known}); run `meshctl context use NAME`"
                ),
            }
        });
    };
    let location = Location::parse(&entry.store).map_err(|e| ConfigError::Invalid {
        path: path.display().to_string(),
        message: format!("context `{name}`: store {e}"),
    })?;
    Ok(Selection {
        location,
        options: RemoteOptions {
            token: entry.token.clone().or(env_token.map(|t| t.trim().to_string())),
            ca_cert: entry.ca_cert.clone(),
        },
        source: Source::Context(name.to_string()),
    })
}

impl Selection {
    /// Opens the chosen store.
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        self.location.open(self.options.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/home/u/.config/meshctl/config.yaml"), text.as_bytes())
    }

    #[test]
    fn a_written_config_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("meshctl").join("config.yaml");
        let config = Config {
            api_version: Some("meshctl/v1".to_string()),
            kind: Some("Config".to_string()),
            current_context: Some("prod".to_string()),
            contexts: vec![Context {
                name: "prod".to_string(),
                store: "https://mesh.example.com:8443".to_string(),
                token: Some("yes: no # 'tricky\"".to_string()),
                ca_cert: Some(PathBuf::from("/etc/ca.pem")),
            }],
        };
        config.save(&path).expect("save");
        assert_eq!(Config::load(&path).expect("load"), config);
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(path.parent().expect("dir")).expect("ls").count(), 1);
    }

    #[test]
    fn a_missing_file_is_an_empty_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::load(&dir.path().join("none.yaml")).expect("load");
        assert_eq!(config.current(), DEFAULT_CONTEXT);
    }

    #[test]
    fn mistakes_name_the_file() {
        for (text, expected) in [
            (
                "contexts: [{name: a, store: sqlite:/x, tokn: t}]",
                "unknown field `tokn`",
            ),
            ("contexts: [{name: a, store: ftp://x}]", "context `a`"),
            ("contexts: [{name: default, store: sqlite:/x}]", "built in"),
            (
                "contexts: [{name: a, store: sqlite:/x}, {name: a, store: sqlite:/y}]",
                "twice",
            ),
            ("contexts: [\n  - a", "2:3"),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.starts_with("/home/u/.config/meshctl/config.yaml: "), "{err}");
            assert!(err.contains(expected), "{text}: {err}");
        }
        assert_eq!(parse("# nothing yet\n").expect("empty"), Config::default());
    }

    #[test]
    fn debug_never_shows_a_token() {
        let c = Context {
            name: "a".to_string(),
            store: "https://x".to_string(),
            token: Some("s3cret".to_string()),
            ca_cert: None,
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
