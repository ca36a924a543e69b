//! `meshctl check DEST`: whether the EgressRules allow a destination, from -f files or the store.

use std::path::Path;

use serde_json::Value;

use crate::common::{Output, meshctl, testdata};

const RULES: &str = "\
apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata:
  name: mysql
spec:
  destination:
    service: 10.0.0.5/32
  ports:
  - port: 3306
    protocol: tcp
---
apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata:
  name: api
  namespace: shop
spec:
  destination:
    service: api.example.com
  ports:
  - port: 443
    protocol: https
---
apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata:
  name: internal
spec:
  destination:
    service: \"*.internal.example.com\"
  ports:
  - port: 8443
    protocol: http
  - port: 80
    protocol: http
---
apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata:
  name: v6
spec:
  destination:
    service: 2001:db8::/32
  ports:
  - port: 5432
    protocol: tcp
---
# Not an EgressRule: ignored by check.
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: reviews
spec:
  destination:
    name: reviews
  route:
  - labels:
      version: v1
";

/// A home directory with the rules in `rules.yaml`.
fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, RULES).expect("write rules");
    let path = path.display().to_string();
    (dir, path)
}

fn check(home: &Path, args: &[&str]) -> Output {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    meshctl(all).home(home).run()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[test]
fn tcp_allowed_by_address() {
    let (dir, rules) = setup();
    let out = check(dir.path(), &["tcp://10.0.0.5:3306", "-f", &rules]);
    out.code(0);
    assert_eq!(
        out.stdout,
        "allowed: tcp://10.0.0.5:3306 by egress-rule/default/mysql (destination 10.0.0.5/32, port 3306/tcp)\n"
    );
    // IP:PORT is TCP too; an IPv4-mapped IPv6 address is its IPv4 address.
    check(dir.path(), &["10.0.0.5:3306", "-f", &rules]).code(0);
    let out = check(dir.path(), &["tcp://[::ffff:10.0.0.5]:3306", "-f", &rules]);
    out.code(0);
    assert!(out.stdout.contains("by egress-rule/default/mysql"), "{}", out.stdout);
    let out = check(dir.path(), &["tcp://[2001:db8:1::9]:5432", "-f", &rules]);
    out.code(0);
    assert!(
        out.stdout
            .contains("egress-rule/default/v6 (destination 2001:db8::/32, port 5432/tcp)"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_walk_through_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = testdata("egress-rule-mysql.yaml").display().to_string();
    check(dir.path(), &["tcp://10.0.0.5:3306", "-f", &file]).code(0);
    check(
        dir.path(),
        &["tcp://10.0.0.5:3306", "-f", &testdata("").display().to_string()],
    )
    .code(0);
    // -f before DEST: -f takes several paths, and gives the last one back when DEST is missing.
    check(dir.path(), &["-f", &file, "tcp://10.0.0.5:3306"]).code(0);
}

#[test]
fn denied_and_near_misses() {
    let (dir, rules) = setup();
    let out = check(dir.path(), &["tcp://10.0.0.6:3306", "-f", &rules]);
    out.code(1);
    assert_eq!(out.stdout, "denied: no EgressRule allows tcp://10.0.0.6:3306\n");

    // The address is covered, but not on that port.
    let out = check(dir.path(), &["tcp://10.0.0.5:3307", "-f", &rules]);
    out.code(1);
    assert_eq!(
        out.stdout,
        "denied: no EgressRule allows tcp://10.0.0.5:3307\n  \
         hint: egress-rule/default/mysql opens 10.0.0.5/32 on 3306/tcp, not 3307\n"
    );

    // A host rule for the name exists, on another port.
    let out = check(dir.path(), &["http://api.example.com/v1", "-f", &rules]);
    out.code(1);
    assert!(
        out.stdout
            .starts_with("denied: no EgressRule allows http://api.example.com/v1\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("hint: egress-rule/shop/api opens api.example.com on 443/https, not 80"),
        "{}",
        out.stdout
    );

    // A wildcard covers the subdomains, not the domain itself.
    let out = check(dir.path(), &["http://internal.example.com", "-f", &rules]);
    out.code(1);
    assert!(
        out.stdout
            .contains("egress-rule/default/internal allows *.internal.example.com, which covers the subdomains"),
        "{}",
        out.stdout
    );

    // An address in an HTTP URL is matched by address, as the proxy does (the request rides on a TCP
    // connection to that address); without a TCP rule for it, the hint says so.
    let out = check(dir.path(), &["http://10.0.0.5:3306/", "-f", &rules]);
    out.code(0);
    assert!(
        out.stdout.contains("by egress-rule/default/mysql") && out.stdout.contains("matched by address"),
        "{}",
        out.stdout
    );
    let out = check(dir.path(), &["http://10.0.0.6:3306/", "-f", &rules]);
    out.code(1);
    assert!(out.stdout.contains("a tcp rule must open it"), "{}", out.stdout);
}

#[test]
fn how_allowed_http_is_carried() {
    let (dir, rules) = setup();
    // http:// to an https port: the proxy originates TLS.
    let out = check(dir.path(), &["http://API.example.com:443/v1", "-f", &rules]);
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "allowed: http://API.example.com:443/v1 by egress-rule/shop/api (destination api.example.com, port 443/https)"
    );
    assert!(lines[1].contains("originates TLS"), "{}", out.stdout);

    // https:// is a CONNECT tunnel, end to end.
    let out = check(dir.path(), &["https://api.example.com", "-f", &rules]);
    out.code(0);
    assert!(out.stdout.contains("CONNECT tunnel"), "{}", out.stdout);

    // https:// to a name whose port is declared plain http: tunnelled all the same.
    let out = check(dir.path(), &["https://a.b.internal.example.com:8443", "-f", &rules]);
    out.code(0);
    assert!(
        out.stdout
            .contains("by egress-rule/default/internal (destination *.internal.example.com, port 8443/http)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("declared http, but the proxy tunnels CONNECT"),
        "{}",
        out.stdout
    );

    // A plain http:// request to an http port: no note.
    let out = check(dir.path(), &["http://x.internal.example.com", "-f", &rules]);
    out.code(0);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);

    // HOST:PORT is matched by name, as a CONNECT or SOCKS5 tunnel.
    let out = check(dir.path(), &["api.example.com:443", "-f", &rules]);
    out.code(0);
    assert!(out.stdout.contains("CONNECT or SOCKS5"), "{}", out.stdout);
    check(dir.path(), &["api.example.com:80", "-f", &rules]).code(1);
}

#[test]
fn json_output() {
    let (dir, rules) = setup();
    let out = check(dir.path(), &["tcp://10.0.0.5:3306", "-f", &rules, "-o", "json"]);
    out.code(0);
    assert_eq!(
        json(&out),
        serde_json::json!({
            "destination": "tcp://10.0.0.5:3306",
            "allowed": true,
            "rule": "egress-rule/default/mysql",
            "protocol": "tcp",
            "matched": "10.0.0.5/32",
        })
    );
    let out = check(dir.path(), &["https://api.example.com", "-f", &rules, "-o", "json"]);
    out.code(0);
    assert_eq!(json(&out)["protocol"], "https");
    assert_eq!(json(&out)["matched"], "api.example.com");
    let out = check(dir.path(), &["tcp://10.0.0.5:3307", "-f", &rules, "-o", "json"]);
    out.code(1);
    assert_eq!(
        json(&out),
        serde_json::json!({
            "destination": "tcp://10.0.0.5:3307",
            "allowed": false,
            "rule": null,
            "protocol": null,
            "matched": null,
        })
    );
}

#[test]
fn bad_destinations_exit_2_and_show_the_forms() {
    let (dir, rules) = setup();
    for dest in [
        "nonsense",
        "udp://10.0.0.5:53",
        "tcp://db.example.com:3306",
        "10.0.0.5",
        "10.0.0.5:99999",
        "2001:db8::1:5432",
        "https://*.example.com",
    ] {
        let out = check(dir.path(), &[dest, "-f", &rules]);
        out.code(2);
        assert!(out.stdout.is_empty(), "{dest}: {}", out.stdout);
        assert!(
            out.stderr.contains(&format!("`{dest}` is not a destination")),
            "{dest}: {}",
            out.stderr
        );
        for form in [
            "tcp://IP:PORT",
            "http://HOST[:PORT][/PATH]",
            "https://HOST[:PORT]",
            "HOST:PORT or IP:PORT",
        ] {
            assert!(out.stderr.contains(form), "{dest}: {}", out.stderr);
        }
    }
    // No DEST at all.
    check(dir.path(), &["-f", &rules]).code(2);
}

#[test]
fn rule_files_must_be_valid_and_readable() {
    let (dir, _) = setup();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: config.istio.io/v1alpha2\nkind: EgressRule\nmetadata:\n  name: web\nspec:\n  destination:\n    service: web.example.com\n  ports:\n  - port: 80\n    protocol: tcp\n",
    )
    .expect("write");
    let out = check(dir.path(), &["web.example.com:80", "-f", &bad.display().to_string()]);
    out.code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("cannot open a tcp port"), "{}", out.stderr);
    assert!(out.stderr.contains("the EgressRules have 1 error"), "{}", out.stderr);

    let missing = dir.path().join("missing.yaml").display().to_string();
    check(dir.path(), &["tcp://10.0.0.5:3306", "-f", &missing]).code(2);

    // Files without EgressRules: everything is denied, and the hint says why.
    let empty = dir.path().join("none.yaml");
    std::fs::write(&empty, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n").expect("write");
    let out = check(dir.path(), &["tcp://10.0.0.5:3306", "-f", &empty.display().to_string()]);
    out.code(1);
    assert!(
        out.stdout.contains("hint: there are no EgressRules in the files given"),
        "{}",
        out.stdout
    );
}

#[test]
fn rules_from_the_store() {
    let (dir, rules) = setup();
    // An empty store denies everything.
    let out = check(dir.path(), &["tcp://10.0.0.5:3306"]);
    out.code(1);
    assert!(
        out.stdout.contains("hint: there are no EgressRules in the store"),
        "{}",
        out.stdout
    );

    meshctl(["create", "-f", &rules]).home(dir.path()).run().code(0);
    let out = check(dir.path(), &["tcp://10.0.0.5:3306"]);
    out.code(0);
    assert_eq!(
        out.stdout,
        "allowed: tcp://10.0.0.5:3306 by egress-rule/default/mysql (destination 10.0.0.5/32, port 3306/tcp)\n"
    );
    let out = check(dir.path(), &["https://api.example.com", "-o", "json"]);
    out.code(0);
    assert_eq!(json(&out)["rule"], "egress-rule/shop/api");
    let out = check(dir.path(), &["tcp://10.0.0.5:3307"]);
    out.code(1);
    assert!(
        out.stdout
            .contains("egress-rule/default/mysql opens 10.0.0.5/32 on 3306/tcp, not 3307"),
        "{}",
        out.stdout
    );

    meshctl(["delete", "egressrule", "mysql"])
        .home(dir.path())
        .run()
        .code(0);
    check(dir.path(), &["tcp://10.0.0.5:3306"]).code(1);

    // A store that cannot be opened is exit 2, not a denial.
    check(dir.path(), &["tcp://10.0.0.5:3306", "--store", "http://10.255.255.1:1"]).code(2);
}
