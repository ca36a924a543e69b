//! `meshctl context`: named stores and their credentials (see `crate::context` for the file).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use comfy_table::{Attribute, Cell, ContentArrangement, Table};

use crate::cli::objects::config_error;
use crate::cli::{ColorChoice, Global, Outcome, UsageError};
use crate::context::{self, Config, Context, DEFAULT_CONTEXT, TOKEN_ENV};
use crate::store::Location;

/// Manage named stores and their credentials
///
/// Contexts live in $XDG_CONFIG_HOME/meshctl/config.yaml (mode 0600). The built-in context `default`
/// is the embedded store at $XDG_DATA_HOME/meshctl/store.db. A command uses --store (or
/// MESHCTL_STORE) when given, else --context NAME, else the current context.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// List the contexts, marking the current one (tokens are never shown)
    List,
    /// Make NAME the current context
    Use {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Add a context
    ///
    /// The token for a remote store comes from --token-file (`-` for standard input), else
    /// MESHCTL_TOKEN, else a hidden prompt on the terminal; never from the command line, so it stays
    /// out of shell history. Without any of them and without a terminal, meshctl refuses rather than
    /// waiting; --no-token adds a context for a store that needs none (`meshctl serve` on loopback
    /// without --tokens).
    #[command(
        after_help = "Examples:\n  meshctl token create ci --tokens-file tokens.yaml > ci.token\n  meshctl context add prod --store https://mesh.example.com:8443 --token-file ci.token --ca-cert ca.pem\n  meshctl context add local --store http://127.0.0.1:8080 --no-token\n  meshctl context add scratch --store sqlite:/tmp/scratch.db"
    )]
    Add {
        #[arg(value_name = "NAME")]
        name: String,
        /// The store: sqlite:PATH, https://HOST:PORT, or http://127.0.0.1:PORT
        #[arg(long, value_name = "STORE")]
        store: String,
        /// Read the token from this file (`-` for standard input)
        #[arg(long, value_name = "FILE", conflicts_with = "no_token")]
        token_file: Option<PathBuf>,
        /// The store needs no token
        #[arg(long)]
        no_token: bool,
        /// Verify the server against these CA certificates (PEM) instead of the system's roots
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
        /// Replace a context of the same name
        #[arg(long)]
        overwrite: bool,
        /// Also make it the current context
        #[arg(long = "use")]
        use_it: bool,
    },
    /// Remove a context (the built-in `default` stays)
    Remove {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

pub fn run(_global: &Global, args: Args) -> anyhow::Result<Outcome> {
    let path = context::config_path().map_err(config_error)?;
    let mut config = Config::load(&path).map_err(config_error)?;
    match args.command {
        Sub::List => list(&config),
        Sub::Use { name } => {
            if name != DEFAULT_CONTEXT && config.find(&name).is_none() {
                return Err(no_such(&config, &name, &path));
            }
            config.current_context = (name != DEFAULT_CONTEXT).then(|| name.clone());
            save(&config, &path)?;
            writeln!(std::io::stdout(), "Switched to context \"{name}\".")?;
            Ok(Outcome::Success)
        }
        Sub::Add {
            name,
            store,
            token_file,
            no_token,
            ca_cert,
            overwrite,
            use_it,
        } => {
            let entry = new_context(name, &store, token_file.as_deref(), no_token, ca_cert.as_deref())?;
            let name = entry.name.clone();
            match config.contexts.iter_mut().find(|c| c.name == name) {
                Some(_) if !overwrite => {
                    return Err(UsageError(format!(
                        "context `{name}` already exists in {}: remove it first, or pass --overwrite",
                        path.display()
                    ))
                    .into());
                }
                Some(existing) => *existing = entry,
                None => config.contexts.push(entry),
            }
            if use_it {
                config.current_context = Some(name.clone());
            }
            save(&config, &path)?;
            let mut out = std::io::stdout();
            if use_it {
                writeln!(out, "Added context \"{name}\" and switched to it.")?;
            } else {
                writeln!(
                    out,
                    "Added context \"{name}\"; use it with `meshctl context use {name}` or `--context {name}`."
                )?;
            }
            Ok(Outcome::Success)
        }
        Sub::Remove { name } => {
            if name == DEFAULT_CONTEXT {
                return Err(
                    UsageError(format!("context `{DEFAULT_CONTEXT}` is built in and cannot be removed")).into(),
                );
            }
            if config.find(&name).is_none() {
                return Err(no_such(&config, &name, &path));
            }
            config.contexts.retain(|c| c.name != name);
            let was_current = config.current_context.as_deref() == Some(name.as_str());
            if was_current {
                config.current_context = None;
            }
            save(&config, &path)?;
            let mut out = std::io::stdout();
            writeln!(out, "Removed context \"{name}\" from {}.", path.display())?;
            if was_current {
                writeln!(
                    out,
                    "It was the current context; the current context is now \"{DEFAULT_CONTEXT}\"."
                )?;
            }
            Ok(Outcome::Success)
        }
    }
}

fn save(config: &Config, path: &Path) -> anyhow::Result<()> {
    let mut config = config.clone();
    config.api_version.get_or_insert_with(|| "meshctl/v1".to_string());
    config.kind.get_or_insert_with(|| "Config".to_string());
    config.save(path).map_err(config_error)
}

fn no_such(config: &Config, name: &str, path: &Path) -> anyhow::Error {
    let names = config.names();
    let hint = crate::suggest::did_you_mean(name, names.iter().copied())
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    UsageError(format!(
        "no context named `{name}` in {}: {hint}(contexts: {})",
        path.display(),
        names.join(", ")
    ))
    .into()
}

/// Builds a context from `context add`'s options, reading the token.
fn new_context(
    name: String,
    store: &str,
    token_file: Option<&Path>,
    no_token: bool,
    ca_cert: Option<&Path>,
) -> anyhow::Result<Context> {
    if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UsageError(format!(
            "`{name}` is not a context name: use letters, digits, `-`, `_` or `.`"
        ))
        .into());
    }
    if name == DEFAULT_CONTEXT {
        return Err(UsageError(format!(
            "`{DEFAULT_CONTEXT}` is the built-in context (the embedded store): choose another name"
        ))
        .into());
    }
    let location = Location::parse(store).map_err(|e| UsageError(format!("--store {e}")))?;
    let store = match &location {
        // A relative path would change meaning with the working directory.
        Location::Sqlite(path) => format!("sqlite:{}", absolute(path)?.display()),
        Location::Remote(url) => url.clone(),
        Location::Etcd(_) => location.to_string(),
    };
    if !location.is_remote() {
        if token_file.is_some() || ca_cert.is_some() {
            return Err(UsageError(
                "a sqlite or etcd store takes no --token-file or --ca-cert (etcd TLS: MESHCTL_ETCD_CA, MESHCTL_ETCD_CERT, MESHCTL_ETCD_KEY)".to_string(),
            )
            .into());
        }
        return Ok(Context {
            name,
            store,
            token: None,
            ca_cert: None,
        });
    }
    let ca_cert = match ca_cert {
        Some(path) => {
            if !store.starts_with("https://") {
                return Err(UsageError("--ca-cert needs an https:// store".to_string()).into());
            }
            let pem = std::fs::read(path).map_err(|e| UsageError(format!("--ca-cert {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem);
            if !matches!(&certs, Ok(c) if !c.is_empty()) {
                return Err(UsageError(format!(
                    "--ca-cert {}: no PEM certificate in the file (expected -----BEGIN CERTIFICATE-----)",
                    path.display()
                ))
                .into());
            }
            Some(absolute(path)?)
        }
        None => None,
    };
    let token = if no_token {
        None
    } else {
        Some(read_token(token_file, &store)?)
    };
    Ok(Context {
        name,
        store,
        token,
        ca_cert,
    })
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).map_err(|e| UsageError(format!("{}: {e}", path.display())).into())
}

/// The token: --token-file, else MESHCTL_TOKEN, else a hidden prompt on a terminal.
fn read_token(token_file: Option<&Path>, store: &str) -> anyhow::Result<String> {
    let token = if let Some(path) = token_file {
        let mut text = String::new();
        let what = if path.as_os_str() == "-" {
            std::io::stdin().lock().read_to_string(&mut text).map(|_| ())
        } else {
            std::fs::read_to_string(path).map(|t| text = t)
        };
        what.map_err(|e| UsageError(format!("--token-file {}: {e}", path.display())))?;
        let token = text.trim().to_string();
        if token.is_empty() {
            return Err(UsageError(format!("--token-file {}: the file is empty", path.display())).into());
        }
        if token.contains(char::is_whitespace) {
            return Err(UsageError(format!(
                "--token-file {}: expected one token, found several words or lines",
                path.display()
            ))
            .into());
        }
        token
    } else if let Some(token) = std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
    {
        token
    } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let token = dialoguer::Password::new()
            .with_prompt(format!("Token for {store} (empty for none)"))
            .allow_empty_password(true)
            .interact()
            .map_err(|e| UsageError(format!("cannot read the token: {e}")))?;
        token.trim().to_string()
    } else {
        return Err(UsageError(format!(
            "no token for {store}: pass --token-file FILE (or `-` for standard input), set {TOKEN_ENV}, or --no-token for a store that needs none (there is no terminal to ask on)"
        ))
        .into());
    };
    Ok(token)
}

fn list(config: &Config) -> anyhow::Result<Outcome> {
    let default_store = context::default_store_path().map_err(config_error)?;
    let color = ColorChoice::Auto.enabled();
    let mut table = Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.set_header(["CURRENT", "NAME", "STORE", "AUTH"].map(|h| {
        let cell = Cell::new(h);
        if color {
            cell.add_attribute(Attribute::Bold)
        } else {
            cell
        }
    }));
    let current = config.current();
    let mark = |name: &str| if name == current { "*" } else { "" };
    table.add_row([
        mark(DEFAULT_CONTEXT).to_string(),
        DEFAULT_CONTEXT.to_string(),
        format!("sqlite:{}", default_store.display()),
        "-".to_string(),
    ]);
    for c in &config.contexts {
        let mut auth = match &c.token {
            Some(t) if !t.is_empty() => "token".to_string(),
            _ if c.store.starts_with("sqlite:") => "-".to_string(),
            _ => "none".to_string(),
        };
        if let Some(ca) = &c.ca_cert {
            auth.push_str(&format!(", CA {}", ca.display()));
        }
        table.add_row([mark(&c.name).to_string(), c.name.clone(), c.store.clone(), auth]);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    let mut out = std::io::stdout().lock();
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(Outcome::Success)
}
