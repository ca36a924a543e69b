//! Which store `meshctl serve` serves: an sqlite file, or an etcd cluster (which several replicas of
//! `meshctl serve` can share).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::etcd::EtcdOptions;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// A backend `serve` can open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:PATH`, or the default embedded store.
    Sqlite(PathBuf),
    /// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX/]`.
    Etcd(crate::store::EtcdUrl),
}

impl Backend {
    /// The backend for `--store` (or `MESHCTL_STORE`); the embedded store at
    /// `$XDG_DATA_HOME/meshctl/store.db` when none is given. `Err` is a usage message.
    pub fn from_flag(store: Option<&str>) -> Result<Backend, String> {
        let Some(spec) = store.map(str::trim).filter(|s| !s.is_empty()) else {
            return default_store_path().map(Backend::Sqlite);
        };
        if let Some(path) = spec.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("--store sqlite:PATH needs a path".to_string());
            }
            return Ok(Backend::Sqlite(PathBuf::from(path)));
        }
        let lower = spec.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            return Err(format!(
                "`meshctl serve` cannot serve the remote store {spec}: serving a store through another \
                 server is not supported; run `meshctl serve` where the store is, with --store sqlite:PATH"
            ));
        }
        if lower.starts_with("etcd:") {
            return crate::store::parse_etcd(spec).map(Backend::Etcd);
        }
        Err(format!(
            "unknown store `{spec}` for `meshctl serve`: use sqlite:PATH, etcd://HOST:PORT[,HOST:PORT...] (or nothing, for the embedded store)"
        ))
    }

    /// Opens the store (`etcd` is used for an etcd backend only).
    pub fn open(&self, etcd: &EtcdOptions) -> Result<Arc<dyn Store>, StoreError> {
        match self {
            Backend::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
            Backend::Etcd(url) => Ok(Arc::new(url.connect(etcd.clone())?)),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Backend::Etcd(url) => url.fmt(f),
        }
    }
}

/// `$XDG_DATA_HOME/meshctl/store.db`, or `~/.local/share/meshctl/store.db` when XDG_DATA_HOME is unset
/// (or not absolute, which the XDG spec says to ignore).
pub fn default_store_path() -> Result<PathBuf, String> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".local").join("share"))
        })
        .ok_or_else(|| "neither XDG_DATA_HOME nor HOME is set: pass --store sqlite:PATH".to_string())?;
    Ok(data.join("meshctl").join("store.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_pick_a_backend_or_explain() {
        assert_eq!(
            Backend::from_flag(Some("sqlite:/tmp/x.db")),
            Ok(Backend::Sqlite(PathBuf::from("/tmp/x.db")))
        );
        assert_eq!(
            Backend::from_flag(Some("sqlite:rel.db")),
            Ok(Backend::Sqlite(PathBuf::from("rel.db")))
        );
        assert!(Backend::from_flag(Some("sqlite:")).is_err());
        let remote = Backend::from_flag(Some("https://example.com:8443")).unwrap_err();
        assert!(remote.contains("not supported"), "{remote}");
        assert!(Backend::from_flag(Some("mysql://x")).is_err());
    }
}
