//! The store-management commands (`create`, `get`, `replace`, `apply`, `delete`, `context`) as a user
//! runs them: on the embedded store of a fresh home, and through a real `meshctl serve` on loopback
//! (plain HTTP, and HTTPS with a test CA and a token from a context).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Meshctl, Output, meshctl, serve, testdata};

/// One user's machine: a home directory shared by every command, and how the commands reach the
/// store (the default context, `--store`, or environment).
struct Client {
    home: tempfile::TempDir,
    store: Option<String>,
    env: Vec<(String, String)>,
}

impl Client {
    fn embedded() -> Client {
        Client {
            home: tempfile::tempdir().expect("temp dir"),
            store: None,
            env: Vec::new(),
        }
    }

    fn with_store(store: &str) -> Client {
        Client {
            store: Some(store.to_string()),
            ..Client::embedded()
        }
    }

    fn cmd(&self, args: &[&str]) -> Meshctl {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if let Some(store) = &self.store {
            all.extend(["--store".to_string(), store.clone()]);
        }
        let mut m = meshctl(all).home(self.home.path());
        for (k, v) in &self.env {
            m = m.env(k, v);
        }
        m
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).run()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        out.code(0);
        out
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> String {
        let p = self.path(rel);
        std::fs::write(&p, text).expect("write file");
        p.display().to_string()
    }
}

fn data(rel: &str) -> String {
    testdata(rel).display().to_string()
}

/// The revision in `Created config KEY at revision N` / `Updated config KEY to revision N`.
fn revision(line: &str, prefix: &str) -> u64 {
    let rest = line
        .trim_end()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected `{prefix}N`, got {line:?}"));
    rest.parse().unwrap_or_else(|_| panic!("not a revision in {line:?}"))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The walk-through: the MySQL EgressRule created, shown every way, replaced, applied and deleted.
fn walkthrough(c: &Client) {
    let file = data("egress-rule-mysql.yaml");

    // create, then create again
    let out = c.ok(&["create", "-f", &file]);
    let created = revision(&out.stdout, "Created config egress-rule/default/mysql at revision ");
    assert!(created >= 1);
    let again = c.run(&["create", "-f", &file]);
    again.code(1);
    assert_eq!(again.stderr, "Error: egress-rule/default/mysql already exists\n");
    assert_eq!(again.stdout, "");

    // get: table, wide, yaml, json, name; every alias of the kind
    for alias in ["egressrules", "egressrule", "egress-rule", "er", "EgressRule"] {
        let out = c.ok(&["get", alias]);
        let lines: Vec<Vec<&str>> = out.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines.len(), 2, "{}", out.stdout);
        assert_eq!(lines[0], ["NAME", "KIND", "NAMESPACE", "AGE"]);
        assert_eq!(&lines[1][..3], ["mysql", "EgressRule", "default"]);
        assert!(
            lines[1][3].ends_with('s') || lines[1][3].ends_with('m'),
            "{}",
            out.stdout
        );
    }
    let wide = c.ok(&["get", "egressrules", "-o", "wide"]);
    assert!(
        wide.stdout
            .lines()
            .next()
            .is_some_and(|h| h.trim_end().ends_with("SUMMARY")),
        "{}",
        wide.stdout
    );
    assert!(wide.stdout.contains("10.0.0.5/32 tcp:3306"), "{}", wide.stdout);
    let all = c.ok(&["get", "egressrules", "-A"]);
    assert!(all.stdout.starts_with("NAMESPACE"), "{}", all.stdout);

    let yaml = c.ok(&["get", "egressrule", "mysql", "-o", "yaml"]);
    assert!(
        yaml.stdout
            .starts_with("apiVersion: config.istio.io/v1alpha2\nkind: EgressRule\n"),
        "{}",
        yaml.stdout
    );
    assert!(
        yaml.stdout.contains(&format!("resourceVersion: \"{created}\"")),
        "{}",
        yaml.stdout
    );
    let one = json(&c.ok(&["get", "egressrule", "mysql", "-o", "json"]).stdout);
    assert_eq!(one["kind"], "EgressRule");
    assert_eq!(one["metadata"]["name"], "mysql");
    assert_eq!(one["spec"]["destination"]["service"], "10.0.0.5/32");
    assert_eq!(one["spec"]["ports"][0]["port"], 3306);
    let list = json(&c.ok(&["get", "egressrules", "-o", "json"]).stdout);
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0], one);
    assert_eq!(c.ok(&["get", "er", "-o", "name"]).stdout, "egress-rule/mysql\n");

    // replace: the file as it is, then an edited copy of `get -o yaml`, then that copy again (stale)
    let out = c.ok(&["replace", "-f", &file]);
    let replaced = revision(&out.stdout, "Updated config egress-rule/default/mysql to revision ");
    assert!(replaced > created);
    let current = c.ok(&["get", "egressrule", "mysql", "-o", "yaml"]).stdout;
    let edited = c.write("mysql-3307.yaml", &current.replace("port: 3306", "port: 3307"));
    let out = c.ok(&["replace", "-f", &edited]);
    let replaced_again = revision(&out.stdout, "Updated config egress-rule/default/mysql to revision ");
    assert!(replaced_again > replaced);
    let stale = c.run(&["replace", "-f", &edited]);
    stale.code(1);
    assert!(
        stale
            .stderr
            .starts_with("Error: egress-rule/default/mysql was changed since it was read")
            && stale.stderr.contains(&format!("you sent resourceVersion {replaced}")),
        "{}",
        stale.stderr
    );
    assert!(c.ok(&["get", "er", "-o", "wide"]).stdout.contains("tcp:3307"));

    // apply: back to the file (configured), then again (unchanged: nothing written)
    assert_eq!(
        c.ok(&["apply", "-f", &file]).stdout,
        "egress-rule/default/mysql configured\n"
    );
    let before = json(&c.ok(&["get", "er", "mysql", "-o", "json"]).stdout);
    assert_eq!(
        c.ok(&["apply", "-f", &file]).stdout,
        "egress-rule/default/mysql unchanged\n"
    );
    let after = json(&c.ok(&["get", "er", "mysql", "-o", "json"]).stdout);
    assert_eq!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );

    // delete by name, then by file
    assert_eq!(
        c.ok(&["delete", "egressrule", "mysql"]).stdout,
        "Deleted config: egress-rule/default/mysql\n"
    );
    let empty = c.ok(&["get", "egressrules"]);
    assert_eq!(empty.stdout, "");
    assert_eq!(empty.stderr, "No resources found in default namespace.\n");
    let gone = c.run(&["delete", "egressrule", "mysql"]);
    gone.code(1);
    assert_eq!(gone.stderr, "Error: egress-rule/default/mysql not found\n");
    assert_eq!(
        c.ok(&["apply", "-f", &file]).stdout,
        "egress-rule/default/mysql created\n"
    );
    assert_eq!(
        c.ok(&["delete", "-f", &file]).stdout,
        "Deleted config: egress-rule/default/mysql\n"
    );
    assert_eq!(c.ok(&["get", "er", "-A"]).stderr, "No resources found.\n");
}

#[test]
fn walkthrough_on_the_embedded_store() {
    let c = Client::embedded();
    walkthrough(&c);
}

#[test]
fn a_fresh_home_gets_its_store_under_xdg_data_home() {
    let c = Client::embedded();
    let store = c.path("data/meshctl/store.db");
    assert!(!store.exists());
    // Reading creates nothing worth keeping but must work on a fresh machine too.
    c.ok(&["get", "egressrules"]);
    c.ok(&["create", "-f", &data("egress-rule-mysql.yaml")]);
    assert!(store.is_file(), "no store at {}", store.display());
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o600);
    assert_eq!(mode(store.parent().expect("dir")), 0o700);
    // The context list names it.
    let list = c.ok(&["context", "list"]).stdout;
    assert!(list.contains(&format!("sqlite:{}", store.display())), "{list}");

    // Without XDG_DATA_HOME, the store is under $HOME/.local/share.
    let bare = Client::embedded();
    bare.cmd(&["create", "-f", &data("egress-rule-mysql.yaml")])
        .env("XDG_DATA_HOME", "")
        .run()
        .code(0);
    assert!(bare.path(".local/share/meshctl/store.db").is_file());
}

#[test]
fn yaml_and_json_output_is_accepted_back_unchanged() {
    let c = Client::embedded();
    c.ok(&[
        "create",
        "-f",
        &data("egress-rule-mysql.yaml"),
        &data("route-rule-reviews-v3.yaml"),
        &data("route-rule-ratings-mysql.yaml"),
        &data("valid/full-route-rule.yaml"),
        &data("valid/destination-policies.yaml"),
    ]);
    let original = json(&c.ok(&["get", "all", "-A", "-o", "json"]).stdout);
    let strip = |list: &Value| -> Vec<Value> {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| {
                let mut item = item.clone();
                let meta = item["metadata"].as_object_mut().expect("metadata");
                for k in ["resourceVersion", "uid", "creationTimestamp"] {
                    meta.remove(k);
                }
                item
            })
            .collect()
    };
    assert!(strip(&original).len() >= 5);
    for format in ["yaml", "json"] {
        let printed = c.ok(&["get", "all", "-A", "-o", format]).stdout;
        let copy = Client::embedded();
        let out = copy.cmd(&["create", "-f", "-"]).stdin(printed.clone()).run();
        out.code(0);
        assert_eq!(out.stdout.lines().count(), strip(&original).len(), "{}", out.stdout);
        let back = json(&copy.ok(&["get", "all", "-A", "-o", "json"]).stdout);
        assert_eq!(strip(&back), strip(&original), "{format}:\n{printed}");
        // And `get` of one object, fed to replace, is accepted too.
        let one = c.ok(&["get", "rr", "reviews-default", "-o", format]).stdout;
        c.cmd(&["replace", "-f", "-"]).stdin(one).run().code(0);
    }
}

#[test]
fn an_invalid_file_writes_nothing() {
    let c = Client::embedded();
    let out = c.run(&[
        "create",
        "-f",
        &data("egress-rule-mysql.yaml"),
        &data("invalid/egress-port-range.yaml"),
    ]);
    out.code(1);
    assert_eq!(out.stdout, "");
    // The same rustc-style diagnostics as `meshctl validate`.
    assert!(
        out.stderr.contains("error[E0304]: port 0 is out of range"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("egress-port-range.yaml:9:11"), "{}", out.stderr);
    assert!(out.stderr.contains("Error: nothing was written"), "{}", out.stderr);
    assert_eq!(c.ok(&["get", "all", "-A"]).stderr, "No resources found.\n");
    for cmd in ["apply", "replace"] {
        let out = c.run(&[cmd, "-f", &data("invalid/egress-port-range.yaml")]);
        out.code(1);
        assert!(out.stderr.contains("Error: nothing was written"), "{}", out.stderr);
    }
    // A file that cannot be read is an I/O error.
    c.run(&["create", "-f", "/nonexistent/rule.yaml"]).code(2);
    // A file with no traffic rules is an error, not silent success.
    let other = c.write(
        "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
    );
    let out = c.run(&["create", "-f", &other]);
    out.code(1);
    assert!(out.stderr.contains("no traffic rules"), "{}", out.stderr);
}

#[test]
fn create_continues_past_an_existing_object_and_exits_1() {
    let c = Client::embedded();
    c.ok(&["create", "-f", &data("egress-rule-mysql.yaml")]);
    let out = c.run(&[
        "create",
        "-f",
        &data("egress-rule-mysql.yaml"),
        &data("route-rule-reviews-v3.yaml"),
    ]);
    out.code(1);
    assert_eq!(out.stderr, "Error: egress-rule/default/mysql already exists\n");
    assert!(
        out.stdout
            .starts_with("Created config route-rule/default/reviews-default at revision "),
        "{}",
        out.stdout
    );
}

const NO_NAMESPACE: &str = "apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata:
  name: billing
spec:
  destination:
    service: \"*.billing.example.com\"
  ports:
  - port: 443
    protocol: https
";

#[test]
fn namespace_flag() {
    let c = Client::embedded();
    let file = c.write("billing.yaml", NO_NAMESPACE);
    assert_eq!(
        c.ok(&["create", "-f", &file, "-n", "payments"])
            .stdout
            .split(" at ")
            .next(),
        Some("Created config egress-rule/payments/billing")
    );
    c.ok(&["get", "er", "billing", "-n", "payments"]);
    let out = c.run(&["get", "er", "billing"]);
    out.code(1);
    assert_eq!(out.stderr, "Error: egress-rule/default/billing not found\n");
    // Without -n: the default namespace.
    assert!(
        c.ok(&["create", "-f", &file])
            .stdout
            .starts_with("Created config egress-rule/default/billing ")
    );
    // A file that names another namespace than -n: an error, nothing written.
    let out = c.run(&["create", "-f", &data("egress-rule-mysql.yaml"), "-n", "payments"]);
    out.code(1);
    assert!(
        out.stderr.contains("namespace `default` but -n says `payments`"),
        "{}",
        out.stderr
    );
    assert_eq!(
        c.ok(&["get", "er", "-n", "payments", "-o", "name"]).stdout,
        "egress-rule/billing\n"
    );
    // -A lists both, namespace first.
    let all = c.ok(&["get", "er", "-A"]).stdout;
    let rows: Vec<Vec<&str>> = all.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAMESPACE", "NAME", "KIND", "AGE"]);
    assert_eq!(&rows[1][..3], ["default", "billing", "EgressRule"]);
    assert_eq!(&rows[2][..3], ["payments", "billing", "EgressRule"]);
    // delete -f with -n.
    assert_eq!(
        c.ok(&["delete", "-f", &file, "-n", "payments"]).stdout,
        "Deleted config: egress-rule/payments/billing\n"
    );
    // -n and -A together are a usage error.
    c.run(&["get", "er", "-n", "x", "-A"]).code(2);
}

#[test]
fn get_reports_unknown_names_and_kinds() {
    let c = Client::embedded();
    c.ok(&["create", "-f", &data("egress-rule-mysql.yaml")]);
    let out = c.run(&["get", "er", "nope", "mysql", "-o", "name"]);
    out.code(1);
    assert_eq!(out.stdout, "egress-rule/mysql\n");
    assert_eq!(out.stderr, "Error: egress-rule/default/nope not found\n");
    let out = c.run(&["get", "egresrules"]);
    out.code(2);
    assert!(out.stderr.contains("did you mean `egressrules`"), "{}", out.stderr);
    // An empty kind in a namespace: a message on stderr, exit 0.
    let out = c.ok(&["get", "destinationpolicies", "-n", "bookinfo"]);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "No resources found in bookinfo namespace.\n");
    // No colour codes into a pipe.
    assert!(!c.ok(&["get", "er"]).stdout.contains('\u{1b}'));
}

#[test]
fn delete_all_needs_a_terminal_or_yes() {
    let c = Client::embedded();
    c.ok(&[
        "create",
        "-f",
        &data("route-rule-reviews-v3.yaml"),
        &data("route-rule-ratings-mysql.yaml"),
        &data("egress-rule-mysql.yaml"),
    ]);
    // stdin is not a terminal: refused at once, nothing deleted.
    let out = c.run(&["delete", "routerules", "--all"]);
    out.code(2);
    assert!(out.stderr.contains("pass -y"), "{}", out.stderr);
    assert_eq!(c.ok(&["get", "rr", "-o", "name"]).stdout.lines().count(), 2);
    let out = c.ok(&["delete", "routerules", "--all", "-y"]);
    assert_eq!(
        out.stdout,
        "Deleted config: route-rule/default/ratings-test-v2-mysql\nDeleted config: route-rule/default/reviews-default\n"
    );
    assert_eq!(c.ok(&["get", "er", "-o", "name"]).stdout, "egress-rule/mysql\n");
    // Names and some missing: the others are deleted, exit 1.
    c.ok(&["create", "-f", &data("route-rule-reviews-v3.yaml")]);
    let out = c.run(&["delete", "rr", "nope", "reviews-default"]);
    out.code(1);
    assert_eq!(out.stdout, "Deleted config: route-rule/default/reviews-default\n");
    assert_eq!(out.stderr, "Error: route-rule/default/nope not found\n");
    // A kind without names or --all is a usage error.
    c.run(&["delete", "rr"]).code(2);
}

#[test]
fn an_unreachable_store_is_exit_2_naming_it() {
    let c = Client::with_store("http://127.0.0.1:9");
    let out = c.run(&["get", "egressrules"]);
    out.code(2);
    assert!(out.stderr.contains("http://127.0.0.1:9"), "{}", out.stderr);
    let out = c.run(&["create", "-f", &data("egress-rule-mysql.yaml")]);
    out.code(2);
    // Plain HTTP beyond loopback is refused before anything is sent.
    let out = Client::with_store("http://192.0.2.1:8080").run(&["get", "er"]);
    out.code(2);
    assert!(out.stderr.contains("loopback"), "{}", out.stderr);
    let out = Client::with_store("nonsense").run(&["get", "er"]);
    out.code(2);
    assert!(out.stderr.contains("sqlite:PATH"), "{}", out.stderr);
    // A sqlite file that is not a store.
    let c = Client::embedded();
    let junk = c.write(
        "junk.db",
        "this is not a database, just text that is long enough to matter\n",
    );
    let out = c.run(&["--store", &format!("sqlite:{junk}"), "get", "er"]);
    out.code(2);
    assert!(out.stderr.contains(&junk), "{}", out.stderr);
}

#[test]
fn store_flag_and_env_choose_the_store() {
    let c = Client::embedded();
    let other = c.path("other.db").display().to_string();
    // --store before or after the command; MESHCTL_STORE too.
    c.ok(&[
        "--store",
        &format!("sqlite:{other}"),
        "create",
        "-f",
        &data("egress-rule-mysql.yaml"),
    ]);
    assert_eq!(
        c.ok(&["get", "er", "-o", "name", "--store", &format!("sqlite:{other}")])
            .stdout,
        "egress-rule/mysql\n"
    );
    let out = c
        .cmd(&["get", "er", "-o", "name"])
        .env("MESHCTL_STORE", &format!("sqlite:{other}"))
        .run();
    out.code(0);
    assert_eq!(out.stdout, "egress-rule/mysql\n");
    // The default store was not touched.
    assert_eq!(
        c.ok(&["get", "er"]).stderr,
        "No resources found in default namespace.\n"
    );
}

#[test]
fn contexts() {
    let c = Client::embedded();
    let scratch = c.path("scratch.db").display().to_string();
    let token = c.write("token", "s3cret-token-value\n");
    let out = c.ok(&["context", "add", "scratch", "--store", &format!("sqlite:{scratch}")]);
    assert!(out.stdout.contains("Added context \"scratch\""), "{}", out.stdout);
    c.ok(&[
        "context",
        "add",
        "prod",
        "--store",
        "https://mesh.example.com:8443",
        "--token-file",
        &token,
    ]);
    // No token source and no terminal: refused at once.
    let out = c.run(&["context", "add", "local", "--store", "http://127.0.0.1:8080"]);
    out.code(2);
    assert!(out.stderr.contains("--token-file"), "{}", out.stderr);
    c.cmd(&["context", "add", "local", "--store", "http://127.0.0.1:8080"])
        .env("MESHCTL_TOKEN", "from-env")
        .run()
        .code(0);
    c.ok(&[
        "context",
        "add",
        "open",
        "--store",
        "http://127.0.0.1:8081",
        "--no-token",
    ]);
    // Plain HTTP beyond loopback, a duplicate, the reserved name: refused.
    c.run(&["context", "add", "far", "--store", "http://192.0.2.1:80", "--no-token"])
        .code(2);
    c.run(&["context", "add", "prod", "--store", "sqlite:/tmp/x.db"])
        .code(2);
    c.run(&["context", "add", "default", "--store", "sqlite:/tmp/x.db"])
        .code(2);

    let config = c.path("config/meshctl/config.yaml");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(config.parent().expect("dir")), 0o700);
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(
        text.contains("s3cret-token-value"),
        "the token is stored in the 0600 file"
    );

    let list = c.ok(&["context", "list"]).stdout;
    assert!(!list.contains("s3cret") && !list.contains("from-env"), "{list}");
    let rows: Vec<Vec<&str>> = list.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["CURRENT", "NAME", "STORE", "AUTH"]);
    assert_eq!(rows[1][..2], ["*", "default"]);
    assert!(list.contains("https://mesh.example.com:8443"), "{list}");

    // use: commands go to the context's store; --context and --store override it.
    assert_eq!(
        c.ok(&["context", "use", "scratch"]).stdout,
        "Switched to context \"scratch\".\n"
    );
    c.ok(&["create", "-f", &data("egress-rule-mysql.yaml")]);
    assert_eq!(c.ok(&["get", "er", "-o", "name"]).stdout, "egress-rule/mysql\n");
    assert_eq!(
        c.ok(&["get", "er", "--context", "default"]).stderr,
        "No resources found in default namespace.\n"
    );
    let default_store = c.path("data/meshctl/store.db").display().to_string();
    assert_eq!(
        c.ok(&[
            "get",
            "er",
            "--context",
            "prod",
            "--store",
            &format!("sqlite:{default_store}")
        ])
        .stderr,
        "No resources found in default namespace.\n"
    );
    let list = c.ok(&["context", "list"]).stdout;
    assert!(
        list.lines().any(|l| l.starts_with("*") && l.contains("scratch")),
        "{list}"
    );
    let out = c.run(&["context", "use", "scrach"]);
    out.code(2);
    assert!(out.stderr.contains("did you mean `scratch`"), "{}", out.stderr);
    let out = c.run(&["get", "er", "--context", "nope"]);
    out.code(2);

    // remove: the current one falls back to default.
    let out = c.ok(&["context", "remove", "scratch"]);
    assert!(out.stdout.contains("now \"default\""), "{}", out.stdout);
    assert_eq!(
        c.ok(&["get", "er"]).stderr,
        "No resources found in default namespace.\n"
    );
    c.run(&["context", "remove", "default"]).code(2);

    // A broken config file is named in the error.
    std::fs::write(&config, "contexts: [{name: a, store: sqlite:/x, tokn: t}]\n").expect("write");
    let out = c.run(&["get", "er"]);
    out.code(2);
    assert!(
        out.stderr.contains(&config.display().to_string()) && out.stderr.contains("tokn"),
        "{}",
        out.stderr
    );
}

// === Through `meshctl serve` ===

#[test]
fn walkthrough_through_serve_over_loopback_http() {
    let server_home = tempfile::tempdir().expect("temp dir");
    let db = server_home.path().join("served.db");
    let server = serve(server_home.path(), ["--store", &format!("sqlite:{}", db.display())]);
    assert!(server.url.starts_with("http://127.0.0.1:"), "{}", server.url);
    let c = Client::with_store(&server.url);
    walkthrough(&c);
    // Invalid objects are refused by the server with the validator's causes too: here the client's
    // own validation stops them first, so nothing reaches the server.
    let out = c.run(&["create", "-f", &data("invalid/egress-port-range.yaml")]);
    out.code(1);
}

/// A CA, and a server certificate for 127.0.0.1 and localhost signed by it, as PEM files in `dir`:
/// (ca.pem, cert.pem, key.pem).
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let (ca, crt, k) = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&ca, ca_cert.pem()).expect("write ca");
    std::fs::write(&crt, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (ca, crt, k)
}

#[test]
fn walkthrough_through_serve_over_https_with_a_token_context() {
    let server_home = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = test_ca(server_home.path());
    let tokens = server_home.path().join("tokens.yaml");
    let out = meshctl([
        "token",
        "create",
        "walkthrough",
        "--tokens-file",
        &tokens.display().to_string(),
    ])
    .run();
    out.code(0);
    let token = out.stdout.trim().to_string();
    assert!(!token.is_empty() && !token.contains('\n'));
    let db = server_home.path().join("served.db");
    let server = serve(
        server_home.path(),
        [
            "--store",
            &format!("sqlite:{}", db.display()),
            "--tokens",
            &tokens.display().to_string(),
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ],
    );

    let c = Client::embedded();
    let token_file = c.write("walkthrough.token", &format!("{token}\n"));
    let url = server.url.clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    c.ok(&[
        "context",
        "add",
        "served",
        "--store",
        &url,
        "--token-file",
        &token_file,
        "--ca-cert",
        &ca.display().to_string(),
        "--use",
    ]);
    walkthrough(&c);

    // Without the CA the server's certificate is not trusted: unreachable, exit 2.
    let out = Client::with_store(&url).run(&["get", "er"]);
    out.code(2);
    // A wrong token is refused (401), exit 1, and the token is never echoed.
    let out = Client::with_store(&url)
        .cmd(&["get", "er"])
        .env("MESHCTL_CA_CERT", &ca.display().to_string())
        .env("MESHCTL_TOKEN", "wrong-token")
        .run();
    out.code(1);
    assert!(out.stderr.contains("unauthorized"), "{}", out.stderr);
    assert!(!out.stderr.contains("wrong-token"));
    // The right token through the environment works with --store.
    Client::with_store(&url)
        .cmd(&["get", "er"])
        .env("MESHCTL_CA_CERT", &ca.display().to_string())
        .env("MESHCTL_TOKEN", &token)
        .run()
        .code(0);
    assert!(!server.stderr().contains(&token), "the server logged the token");
}

/// An EgressRule as the API carries it.
fn egress(name: &str, port: u16) -> meshctl::model::Resource {
    let json = format!(
        r#"{{"apiVersion": "config.istio.io/v1alpha2", "kind": "EgressRule",
            "metadata": {{"name": "{name}", "namespace": "default"}},
            "spec": {{"destination": {{"service": "10.0.0.5/32"}}, "ports": [{{"port": {port}, "protocol": "tcp"}}]}}}}"#
    );
    meshctl::model::Resource::from_json(meshctl::model::Kind::EgressRule, &json).expect("egress rule")
}

#[test]
fn the_remote_store_maps_statuses_and_follows_a_watch() {
    use meshctl::model::Kind;
    use meshctl::store::remote::{RemoteOptions, RemoteStore};
    use meshctl::store::{EventType, ObjectKey, Selector, Store, StoreError};

    let server_home = tempfile::tempdir().expect("temp dir");
    let db = server_home.path().join("served.db");
    let server = serve(server_home.path(), ["--store", &format!("sqlite:{}", db.display())]);
    let store = RemoteStore::new(&server.url, RemoteOptions::default()).expect("client");

    let first = store.create(&egress("a", 3306)).expect("create a");
    let from: u64 = first
        .metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .expect("resourceVersion");
    assert!(matches!(
        store.create(&egress("a", 3306)),
        Err(StoreError::AlreadyExists(_))
    ));
    let key = ObjectKey::new(Kind::EgressRule, "default", "nope");
    assert!(matches!(store.get(&key), Err(StoreError::NotFound(k)) if k == key));
    // An invalid object sent straight to the server: 422 with the validator's causes.
    match store.create(&egress("bad", 0)) {
        Err(StoreError::Invalid { diagnostics, .. }) => {
            assert_eq!(diagnostics[0].field.as_deref(), Some("spec.ports[0].port"));
            assert_eq!(diagnostics[0].code.id(), "E0304");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    // A stale resourceVersion: a conflict that says which version the store has.
    let mut stale = first.clone();
    store.update(&egress("a", 3307)).expect("update");
    stale.metadata.resource_version = Some(from.to_string());
    match store.update(&stale) {
        Err(StoreError::Conflict { sent, current, .. }) => {
            assert_eq!(sent, from.to_string());
            assert!(current.parse::<u64>().is_ok_and(|c| c > from), "{current}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }

    // Watch from the first create: the update, then what happens while watching, in order.
    let selector = Selector {
        kind: Some(Kind::EgressRule),
        namespace: Some("default".to_string()),
    };
    let mut watch = store.watch(&selector, from).expect("watch");
    store.create(&egress("b", 5432)).expect("create b");
    store
        .delete(&ObjectKey::new(Kind::EgressRule, "default", "a"))
        .expect("delete a");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match watch.next(Duration::from_secs(30)).expect("event") {
            Some(e) => seen.push((e.kind, e.object.name().to_string(), e.revision)),
            None => panic!("no event within 30 s; seen {seen:?}"),
        }
    }
    assert_eq!(
        seen.iter().map(|(k, n, _)| (*k, n.as_str())).collect::<Vec<_>>(),
        [
            (EventType::Modified, "a"),
            (EventType::Added, "b"),
            (EventType::Deleted, "a")
        ]
    );
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "{seen:?}");
    assert!(matches!(watch.next(Duration::from_millis(200)), Ok(None)));

    let listing = store.list(&Selector::default()).expect("list");
    assert_eq!(listing.items.iter().map(|r| r.name()).collect::<Vec<_>>(), ["b"]);
    assert_eq!(listing.revision, store.revision().expect("revision"));
}
