//! `meshctl serve`: the config store API over HTTP(S) (docs/api.md).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::cli::{Global, Outcome, UsageError};
use crate::server::{self, Backend};

/// Serve the config store API over HTTP(S)
///
/// Serves the store named by --store (sqlite:PATH, or etcd://HOST:PORT[,...] which several replicas
/// can share; default: the embedded store at
/// $XDG_DATA_HOME/meshctl/store.db) with the Kubernetes API conventions, at
/// /apis/config.istio.io/v1alpha2/. Prints `meshctl serve: listening on URL` to stderr once it is
/// listening, one line per request after that, and stops cleanly on SIGTERM or SIGINT (SIGHUP re-reads
/// the tokens file).
///
/// Without --tokens every request is accepted unauthenticated, so only a loopback address may be used;
/// a non-loopback address also needs TLS.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  meshctl serve --listen 127.0.0.1:8080\n  \
    meshctl token create ci --namespace bookinfo --read-only --tokens-file tokens.yaml\n  \
    meshctl serve --listen 0.0.0.0:8443 --store sqlite:/var/lib/meshctl/store.db \\\n      \
    --tokens tokens.yaml --tls-cert server.pem --tls-key server-key.pem\n  \
    meshctl serve --listen 0.0.0.0:8443 --store etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379 \\\n      \
    --etcd-ca etcd-ca.pem --tokens tokens.yaml --tls-cert server.pem --tls-key server-key.pem")]
pub struct Args {
    /// The address to listen on, HOST:PORT (port 0: any free port; the line printed at start-up says
    /// which)
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// Accept only the bearer tokens listed in FILE (written by `meshctl token create`)
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key)
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// With --store etcd://...: verify the etcd members against this PEM CA bundle (and speak https)
    #[arg(long, value_name = "PEM", env = "MESHCTL_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// With --store etcd://...: the client certificate to present to etcd (needs --etcd-key)
    #[arg(long, value_name = "PEM", env = "MESHCTL_ETCD_CERT", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// The PEM private key of --etcd-cert
    #[arg(long, value_name = "PEM", env = "MESHCTL_ETCD_KEY", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// With --store etcd://...: every key lives under this prefix
    #[arg(
        long,
        value_name = "PREFIX",
        env = "MESHCTL_ETCD_PREFIX",
        default_value = "/meshctl/"
    )]
    pub etcd_prefix: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<Outcome> {
    if global.context.is_some() {
        return Err(UsageError(
            "`meshctl serve` does not use contexts: name the store to serve with --store sqlite:PATH or --store etcd://HOST:PORT".to_string(),
        )
        .into());
    }
    let backend = Backend::from_flag(global.store.as_deref()).map_err(UsageError)?;
    let listen = resolve(&args.listen)?;
    let loopback = listen.ip().is_loopback();
    let tls = args.tls_cert.zip(args.tls_key);
    if !loopback && args.tokens.is_none() {
        return Err(UsageError(format!(
            "refusing to listen on {listen} without --tokens: anyone who can reach it could change the rules; \
             create a token with `meshctl token create NAME --tokens-file FILE` and pass --tokens FILE \
             (without tokens, only loopback addresses such as 127.0.0.1 are allowed)"
        ))
        .into());
    }
    if !loopback && tls.is_none() {
        return Err(UsageError(format!(
            "refusing to serve plain HTTP on {listen}: tokens would cross the network in clear text; \
             pass --tls-cert PEM --tls-key PEM (plain HTTP is allowed on loopback addresses only)"
        ))
        .into());
    }
    if args.tokens.is_none() {
        eprintln!(
            "meshctl serve: WARNING: no --tokens file: authentication is OFF and every request is accepted, \
             reads and writes alike. This is allowed only because {listen} is a loopback address; \
             use --tokens FILE for anything shared."
        );
    } else if let Some(path) = &args.tokens {
        warn_if_readable_by_others(path);
    }
    let config = server::Config {
        listen,
        tokens: args.tokens,
        tls,
    };
    // Everything that fails before the server is listening (files, the store, the address) is a usage
    // or I/O error.
    let prepared = server::prepare(config).map_err(UsageError)?;
    let etcd = crate::store::etcd::EtcdOptions {
        prefix: args.etcd_prefix,
        ca: args.etcd_ca,
        cert: args.etcd_cert,
        key: args.etcd_key,
        ..crate::store::etcd::EtcdOptions::default()
    };
    let store = backend
        .open(&etcd)
        .map_err(|e| UsageError(format!("cannot open the store {backend}: {e}")))?;
    eprintln!("meshctl serve: serving the store {backend}");
    server::run(prepared, store).map_err(|e| UsageError(format!("{e:#}")))?;
    Ok(Outcome::Success)
}

/// `HOST:PORT` → one address: an IP address as given, or the first address a host name resolves to.
fn resolve(listen: &str) -> Result<SocketAddr, UsageError> {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let usage = |why: String| {
        UsageError(format!(
            "--listen {listen}: {why}; expected HOST:PORT, e.g. 127.0.0.1:8080"
        ))
    };
    let mut addrs = listen.to_socket_addrs().map_err(|e| usage(e.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| usage("the host name has no address".to_string()))
}

fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "meshctl serve: warning: the tokens file {} is accessible by other users (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_resolve() {
        assert_eq!(resolve("127.0.0.1:0").unwrap().port(), 0);
        assert!(resolve("[::1]:8080").unwrap().ip().is_loopback());
        assert!(resolve("localhost:80").unwrap().ip().is_loopback());
        assert!(resolve("no port").is_err());
    }
}
