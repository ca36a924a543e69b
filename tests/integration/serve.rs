//! `meshctl serve` and `meshctl token create`: the real binary, real HTTP(S) on 127.0.0.1 with an
//! OS-chosen port, a real sqlite file. No assertion depends on timing: waits are for events, with
//! generous deadlines only so that a broken server fails the test instead of hanging it.

use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

use crate::common::{meshctl, serve};

pub(crate) fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("reqwest client")
}

pub(crate) fn egress(name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "config.istio.io/v1alpha2",
        "kind": "EgressRule",
        "metadata": {"name": name},
        "spec": {"destination": {"service": "10.0.0.5/32"}, "ports": [{"port": port, "protocol": "tcp"}]},
    })
}

pub(crate) fn body(r: Response) -> (StatusCode, Value) {
    let code = r.status();
    let text = r.text().expect("response body");
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (code, value)
}

/// Asserts a Status failure with this code and reason.
fn status(r: Response, code: u16, reason: &str) -> Value {
    let (got, v) = body(r);
    assert_eq!(got.as_u16(), code, "{v}");
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    assert_eq!(v["code"], code, "{v}");
    v
}

fn store_flag(dir: &Path) -> String {
    format!("--store=sqlite:{}", dir.join("store.db").display())
}

#[test]
fn create_get_list_replace_delete_with_kubernetes_codes() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path(), [store_flag(home.path())]);
    let c = client();
    let coll = server.api("/namespaces/default/egressrules");
    let one = server.api("/namespaces/default/egressrules/mysql");

    let (code, created) = body(c.post(&coll).json(&egress("mysql", 3306)).send().unwrap());
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["kind"], "EgressRule");
    assert_eq!(created["metadata"]["name"], "mysql");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["spec"]["ports"][0]["port"], 3306);
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();
    assert!(rv.parse::<u64>().is_ok(), "{rv}");
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());

    let v = status(
        c.post(&coll).json(&egress("mysql", 3306)).send().unwrap(),
        409,
        "AlreadyExists",
    );
    assert_eq!(v["details"]["name"], "mysql");
    assert_eq!(v["details"]["kind"], "egressrules");

    let (code, got) = body(c.get(&one).send().unwrap());
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got, created);

    // A list, in the namespace and across namespaces.
    let mut other = egress("other", 5432);
    other["metadata"]["namespace"] = json!("team-b");
    let (code, _) = body(
        c.post(server.api("/namespaces/team-b/egressrules"))
            .json(&other)
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::CREATED);
    let (code, list) = body(c.get(&coll).send().unwrap());
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["kind"], "EgressRuleList");
    assert_eq!(list["apiVersion"], "config.istio.io/v1alpha2");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0], created);
    let (code, all) = body(c.get(server.api("/egressrules")).send().unwrap());
    assert_eq!(code, StatusCode::OK);
    let names: Vec<_> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{}/{}", i["metadata"]["namespace"], i["metadata"]["name"]))
        .collect();
    assert_eq!(names, ["\"default\"/\"mysql\"", "\"team-b\"/\"other\""]);
    let list_rv: u64 = all["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(list_rv >= 2, "{all}");
    let (_, routes) = body(c.get(server.api("/routerules")).send().unwrap());
    assert_eq!(routes["kind"], "RouteRuleList");
    assert_eq!(routes["items"], json!([]));

    // Replace with the current resourceVersion, then with the stale one.
    let mut changed = created.clone();
    changed["spec"]["ports"][0]["port"] = json!(3307);
    let (code, replaced) = body(c.put(&one).json(&changed).send().unwrap());
    assert_eq!(code, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["spec"]["ports"][0]["port"], 3307);
    assert_eq!(replaced["metadata"]["uid"], created["metadata"]["uid"]);
    assert_ne!(
        replaced["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    let v = status(c.put(&one).json(&changed).send().unwrap(), 409, "Conflict");
    assert_eq!(v["details"]["name"], "mysql");
    // PUT of an object that does not exist.
    let mut ghost = egress("ghost", 1);
    ghost["metadata"]["namespace"] = json!("default");
    status(
        c.put(server.api("/namespaces/default/egressrules/ghost"))
            .json(&ghost)
            .send()
            .unwrap(),
        404,
        "NotFound",
    );

    // Delete answers the deleted object; then it is gone.
    let (code, deleted) = body(c.delete(&one).send().unwrap());
    assert_eq!(code, StatusCode::OK);
    assert_eq!(deleted["metadata"]["name"], "mysql");
    assert_eq!(deleted["spec"]["ports"][0]["port"], 3307);
    let v = status(c.get(&one).send().unwrap(), 404, "NotFound");
    assert_eq!(v["details"]["name"], "mysql");
    status(c.delete(&one).send().unwrap(), 404, "NotFound");

    // Health, readiness, metrics need no token and answer plain text.
    let r = c.get(format!("{}/healthz", server.url)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        c.get(format!("{}/readyz", server.url)).send().unwrap().status(),
        StatusCode::OK
    );
    let metrics = c.get(format!("{}/metrics", server.url)).send().unwrap().text().unwrap();
    assert!(
        metrics.contains("meshctl_http_requests_total{verb=\"create\",code=\"201\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meshctl_http_requests_total{verb=\"update\",code=\"409\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meshctl_http_request_duration_seconds_bucket{verb=\"get\",le=\"+Inf\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("\nmeshctl_store_revision "), "{metrics}");
    assert!(metrics.contains("\nmeshctl_watches_open 0\n"), "{metrics}");

    // Without --tokens the server says so, and logs one line per request.
    let log = server.stderr();
    assert!(log.contains("WARNING: no --tokens file"), "{log}");
    assert!(
        log.contains("POST /apis/config.istio.io/v1alpha2/namespaces/default/egressrules 409"),
        "{log}"
    );
}

#[test]
fn bad_requests_get_status_errors_and_hurt_nothing() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path(), [store_flag(home.path())]);
    let c = client();
    let coll = server.api("/namespaces/default/egressrules");

    // Invalid: 422 with the validator's causes.
    let v = status(c.post(&coll).json(&egress("mysql", 0)).send().unwrap(), 422, "Invalid");
    let causes = v["details"]["causes"].as_array().expect("causes");
    assert_eq!(causes.len(), 1, "{v}");
    assert_eq!(causes[0]["field"], "spec.ports[0].port");
    assert_eq!(causes[0]["reason"], "FieldValueInvalid");
    assert_eq!(causes[0]["code"], "E0304");
    assert!(causes[0]["message"].as_str().unwrap().contains("out of range"), "{v}");
    // A missing field and an unknown one: the same codes as `meshctl validate`.
    let mut missing = egress("mysql", 80);
    missing["spec"].as_object_mut().unwrap().remove("destination");
    missing["spec"]["destinaton"] = json!({"service": "a.example.com"});
    let v = status(c.post(&coll).json(&missing).send().unwrap(), 422, "Invalid");
    let codes: Vec<_> = v["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect();
    assert!(codes.contains(&"E0201".to_string()), "{v}");

    // Malformed JSON, a body that is not an object, the wrong kind, namespace or name: 400.
    let r = c
        .post(&coll)
        .header("Content-Type", "application/json")
        .body("{\"apiVersion\": ")
        .send()
        .unwrap();
    status(r, 400, "BadRequest");
    let r = c
        .post(&coll)
        .header("Content-Type", "application/json")
        .body("[1, 2]")
        .send()
        .unwrap();
    status(r, 400, "BadRequest");
    let mut route = egress("mysql", 3306);
    route["kind"] = json!("RouteRule");
    let v = status(c.post(&coll).json(&route).send().unwrap(), 400, "BadRequest");
    assert!(v["message"].as_str().unwrap().contains("kind"), "{v}");
    let mut elsewhere = egress("mysql", 3306);
    elsewhere["metadata"]["namespace"] = json!("other");
    status(c.post(&coll).json(&elsewhere).send().unwrap(), 400, "BadRequest");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [egress("a", 1), egress("b", 2)]});
    status(c.post(&coll).json(&list).send().unwrap(), 400, "BadRequest");
    let (code, _) = body(c.post(&coll).json(&egress("mysql", 3306)).send().unwrap());
    assert_eq!(code, StatusCode::CREATED);
    let mut renamed = egress("other-name", 3306);
    renamed["metadata"]["namespace"] = json!("default");
    status(
        c.put(server.api("/namespaces/default/egressrules/mysql"))
            .json(&renamed)
            .send()
            .unwrap(),
        400,
        "BadRequest",
    );

    // Over 1 MiB: 413, and the connection stays usable for the next request.
    let mut huge = egress("huge", 3306);
    huge["metadata"]["annotations"] = json!({"filler": "x".repeat(2 * 1024 * 1024)});
    let v = status(c.post(&coll).json(&huge).send().unwrap(), 413, "RequestEntityTooLarge");
    assert!(v["message"].as_str().unwrap().contains("1048576"), "{v}");

    // Paths nobody serves, and methods a path does not take.
    status(
        c.get(server.api("/namespaces/default/widgets")).send().unwrap(),
        404,
        "NotFound",
    );
    status(
        c.get(format!("{}/nothing/here", server.url)).send().unwrap(),
        404,
        "NotFound",
    );
    let r = c
        .patch(server.api("/namespaces/default/egressrules/mysql"))
        .send()
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET, PUT, DELETE");
    status(r, 405, "MethodNotAllowed");
    status(
        c.post(server.api("/egressrules")).json(&egress("x", 1)).send().unwrap(),
        405,
        "MethodNotAllowed",
    );
    status(
        c.get(format!("{coll}?watch=true&resourceVersion=abc")).send().unwrap(),
        400,
        "BadRequest",
    );

    // After all that, the store holds exactly the one good object.
    let (_, all) = body(c.get(server.api("/egressrules")).send().unwrap());
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all["items"][0]["spec"]["ports"][0]["port"], 3306);
}

#[test]
fn two_clients_replacing_with_the_same_resource_version_one_wins() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path(), [store_flag(home.path())]);
    let c = client();
    let coll = server.api("/namespaces/default/egressrules");
    let one = server.api("/namespaces/default/egressrules/race");
    let (code, created) = body(c.post(&coll).json(&egress("race", 1000)).send().unwrap());
    assert_eq!(code, StatusCode::CREATED);
    let mut current = created;
    for round in 0..5u16 {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2u16)
            .map(|i| {
                let mut object = current.clone();
                object["spec"]["ports"][0]["port"] = json!(2000 + round * 10 + i);
                let (barrier, url) = (barrier.clone(), one.clone());
                std::thread::spawn(move || {
                    let c = client();
                    barrier.wait();
                    let (code, v) = body(c.put(&url).json(&object).send().unwrap());
                    (code.as_u16(), v)
                })
            })
            .collect();
        let mut results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        results.sort_by_key(|(code, _)| *code);
        assert_eq!(results[0].0, 200, "{results:?}");
        assert_eq!(results[1].0, 409, "{results:?}");
        assert_eq!(results[1].1["reason"], "Conflict");
        let (_, stored) = body(c.get(&one).send().unwrap());
        assert_eq!(stored, results[0].1, "the winner's write is what is stored");
        current = stored;
    }
}

/// Runs `meshctl token create` and returns the token it printed.
fn create_token(file: &Path, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", name, "--tokens-file"];
    let file_arg = file.display().to_string();
    args.push(&file_arg);
    args.extend_from_slice(extra);
    let out = meshctl(&args).run();
    out.code(0);
    let lines: Vec<_> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the token alone: {:?}", out.stdout);
    assert!(lines[0].starts_with("mshc_"), "{}", out.stdout);
    assert!(!out.stderr.contains(lines[0]), "the token is not repeated on stderr");
    lines[0].to_string()
}

#[test]
fn token_create_writes_a_private_file_and_prints_only_the_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.yaml");
    let a = create_token(&file, "ci-readonly", &["--namespace", "bookinfo", "--read-only"]);
    let b = create_token(&file, "admin", &[]);
    assert_ne!(a, b);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(&a) && !text.contains(&b),
        "only hashes are stored:\n{text}"
    );
    assert!(
        text.contains("name: ci-readonly") && text.contains("name: admin"),
        "{text}"
    );
    assert!(text.contains("- bookinfo") || text.contains("[bookinfo]"), "{text}");
    // No stray temporary files are left next to it.
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);

    let out = meshctl(["token", "create", "admin", "--tokens-file", &file.display().to_string()]).run();
    out.code(1);
    assert_eq!(out.stdout, "", "no token is printed when none was added");
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text, "the file is unchanged");

    let out = meshctl(["token", "create", "bad name", "--tokens-file", "x.yaml"]).run();
    out.code(2);
    let out = meshctl([
        "token",
        "create",
        "x",
        "--namespace",
        "Not_A_Namespace",
        "--tokens-file",
        "x.yaml",
    ])
    .run();
    out.code(2);
}

#[test]
fn tokens_limit_verbs_and_namespaces() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("tokens.yaml");
    let admin = create_token(&file, "admin", &[]);
    let reader = create_token(&file, "reader", &["--read-only"]);
    let team_a = create_token(&file, "team-a", &["--namespace", "a"]);
    let server = serve(
        home.path(),
        [store_flag(home.path()), format!("--tokens={}", file.display())],
    );
    let c = client();
    let in_ns = |ns: &str| server.api(&format!("/namespaces/{ns}/egressrules"));
    let obj = |ns: &str, name: &str| {
        let mut o = egress(name, 3306);
        o["metadata"]["namespace"] = json!(ns);
        o
    };

    // No token, a wrong token, a malformed header: 401 with a Bearer challenge.
    let r = c.get(in_ns("a")).send().unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    status(r, 401, "Unauthorized");
    let wrong = format!("{admin}x");
    status(
        c.get(in_ns("a")).bearer_auth(&wrong).send().unwrap(),
        401,
        "Unauthorized",
    );
    let r = c
        .get(in_ns("a"))
        .header("Authorization", format!("Basic {admin}"))
        .send()
        .unwrap();
    status(r, 401, "Unauthorized");
    // Health needs none.
    assert_eq!(
        c.get(format!("{}/healthz", server.url)).send().unwrap().status(),
        StatusCode::OK
    );

    // team-a writes and reads in a, nowhere else.
    let (code, _) = body(
        c.post(in_ns("a"))
            .bearer_auth(&team_a)
            .json(&obj("a", "x"))
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::CREATED);
    let (code, list) = body(c.get(in_ns("a")).bearer_auth(&team_a).send().unwrap());
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (code, _) = body(
        c.post(in_ns("b"))
            .bearer_auth(&admin)
            .json(&obj("b", "y"))
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::CREATED);
    status(c.get(in_ns("b")).bearer_auth(&team_a).send().unwrap(), 403, "Forbidden");
    status(
        c.get(server.api("/namespaces/b/egressrules/y"))
            .bearer_auth(&team_a)
            .send()
            .unwrap(),
        403,
        "Forbidden",
    );
    status(
        c.post(in_ns("b"))
            .bearer_auth(&team_a)
            .json(&obj("b", "z"))
            .send()
            .unwrap(),
        403,
        "Forbidden",
    );
    let v = status(
        c.get(server.api("/egressrules")).bearer_auth(&team_a).send().unwrap(),
        403,
        "Forbidden",
    );
    assert!(v["message"].as_str().unwrap().contains("\"*\""), "{v}");
    status(
        c.get(format!("{}?watch=true", in_ns("b")))
            .bearer_auth(&team_a)
            .send()
            .unwrap(),
        403,
        "Forbidden",
    );

    // The read-only token reads everywhere, writes nowhere.
    let (code, all) = body(c.get(server.api("/egressrules")).bearer_auth(&reader).send().unwrap());
    assert_eq!(code, StatusCode::OK);
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let (code, _) = body(
        c.get(server.api("/namespaces/a/egressrules/x"))
            .bearer_auth(&reader)
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::OK);
    status(
        c.post(in_ns("a"))
            .bearer_auth(&reader)
            .json(&obj("a", "w"))
            .send()
            .unwrap(),
        403,
        "Forbidden",
    );
    status(
        c.delete(server.api("/namespaces/a/egressrules/x"))
            .bearer_auth(&reader)
            .send()
            .unwrap(),
        403,
        "Forbidden",
    );
    let (code, _) = body(
        c.delete(server.api("/namespaces/a/egressrules/x"))
            .bearer_auth(&admin)
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::OK);

    // The log names the token that made each request, never the token or its hash.
    let (exit, log) = server.terminate();
    assert_eq!(exit, Some(0), "{log}");
    assert!(log.contains("user=team-a"), "{log}");
    assert!(!log.contains("WARNING: no --tokens"), "{log}");
    let hashes = std::fs::read_to_string(&file).unwrap();
    for token in [&admin, &reader, &team_a, &wrong] {
        assert!(!log.contains(token.as_str()), "a token appears in the log:\n{log}");
        let body = token.trim_start_matches("mshc_");
        assert!(!log.contains(&body[..16]), "part of a token appears in the log:\n{log}");
    }
    for line in hashes.lines().filter(|l| l.contains("sha256")) {
        let hash = line.rsplit(' ').next().unwrap().trim_matches('"');
        assert!(!log.contains(hash), "a token hash appears in the log:\n{log}");
    }
}

#[test]
fn sighup_reloads_the_tokens_file() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("tokens.yaml");
    let admin = create_token(&file, "admin", &[]);
    let server = serve(
        home.path(),
        [store_flag(home.path()), format!("--tokens={}", file.display())],
    );
    let c = client();
    let url = server.api("/egressrules");
    assert_eq!(c.get(&url).bearer_auth(&admin).send().unwrap().status(), StatusCode::OK);
    let late = create_token(&file, "late", &["--read-only"]);
    status(c.get(&url).bearer_auth(&late).send().unwrap(), 401, "Unauthorized");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !server.stderr().contains("reloaded 2 token(s)") {
        assert!(Instant::now() < deadline, "no reload:\n{}", server.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.get(&url).bearer_auth(&late).send().unwrap().status(), StatusCode::OK);
    // A broken file keeps the tokens in force.
    std::fs::write(&file, "tokens: [").unwrap();
    server.signal("HUP");
    while !server.stderr().contains("keeping the current tokens") {
        assert!(Instant::now() < deadline, "no reload:\n{}", server.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.get(&url).bearer_auth(&late).send().unwrap().status(), StatusCode::OK);
}

/// A CA, and a server certificate for 127.0.0.1 and localhost that it signed: (CA PEM, cert PEM, key PEM).
fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "meshctl test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[test]
fn tls_with_a_test_ca() {
    let home = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki();
    let (cert_file, key_file) = (home.path().join("server.pem"), home.path().join("server-key.pem"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let tokens = home.path().join("tokens.yaml");
    let token = create_token(&tokens, "admin", &[]);
    let server = serve(
        home.path(),
        [
            store_flag(home.path()),
            format!("--tokens={}", tokens.display()),
            format!("--tls-cert={}", cert_file.display()),
            format!("--tls-key={}", key_file.display()),
        ],
    );
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);

    let _ = rustls::crypto::ring::default_provider().install_default();
    let trusted = Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let (code, created) = body(
        trusted
            .post(server.api("/namespaces/default/egressrules"))
            .bearer_auth(&token)
            .json(&egress("mysql", 3306))
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let localhost = server.url.replace("127.0.0.1", "localhost");
    let r = trusted.get(format!("{localhost}/healthz")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A client that does not trust the CA refuses the server; plain HTTP gets nowhere.
    let (other_ca, _, _) = test_pki();
    let untrusting = Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .tls_certs_only([reqwest::Certificate::from_pem(other_ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    assert!(untrusting.get(format!("{}/healthz", server.url)).send().is_err());
    let plain = server.url.replace("https://", "http://");
    let answered = client()
        .get(format!("{plain}/healthz"))
        .send()
        .is_ok_and(|r| r.status().is_success());
    assert!(!answered, "plain HTTP to the TLS port must not succeed");

    // The server is still fine after those failed handshakes.
    let (code, got) = body(
        trusted
            .get(server.api("/namespaces/default/egressrules/mysql"))
            .bearer_auth(&token)
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got, created);
}

#[test]
fn unsafe_or_impossible_setups_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let tokens = home.path().join("tokens.yaml");
    create_token(&tokens, "admin", &[]);
    let store = store_flag(home.path());
    let run = |args: &[&str]| {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        meshctl(all).run()
    };
    let out = run(&["--listen", "0.0.0.0:0", &store]);
    out.code(2);
    assert!(out.stderr.contains("without --tokens"), "{}", out.stderr);
    let tokens_flag = format!("--tokens={}", tokens.display());
    let out = run(&["--listen", "0.0.0.0:0", &store, &tokens_flag]);
    out.code(2);
    assert!(out.stderr.contains("plain HTTP"), "{}", out.stderr);
    let out = run(&["--listen", "127.0.0.1:0", "--store", "https://example.com:8443"]);
    out.code(2);
    assert!(out.stderr.contains("not supported"), "{}", out.stderr);
    let out = run(&["--listen", "127.0.0.1:0", &store, "--tls-cert", "x.pem"]);
    out.code(2);
    let out = run(&["--listen", "nonsense", &store]);
    out.code(2);
    let bad_tokens = home.path().join("bad.yaml");
    std::fs::write(
        &bad_tokens,
        "tokens:\n- name: x\n  sha256: nothex\n  namespaces: [a]\n  verbs: [read]\n",
    )
    .unwrap();
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        &store,
        &format!("--tokens={}", bad_tokens.display()),
    ]);
    out.code(2);
    assert!(
        out.stderr.contains("bad.yaml: tokens[0] (`x`): sha256"),
        "{}",
        out.stderr
    );
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        &store,
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ]);
    out.code(2);
    assert!(out.stderr.contains("/nonexistent/cert.pem"), "{}", out.stderr);
}

/// A watch stream over a plain socket (HTTP/1.1 by hand), so the test can hang up at once: dropping
/// it shuts the socket down, as a client that goes away would. Events arrive on `rx`.
pub(crate) struct Watcher {
    socket: std::net::TcpStream,
    rx: std::sync::mpsc::Receiver<Value>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

/// Starts a watch at `url` (an `http://127.0.0.1:PORT/...` URL); asserts the 200 and the NDJSON type.
pub(crate) fn watch(url: &str) -> Watcher {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("a plain-HTTP URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut socket = std::net::TcpStream::connect(host).expect("connect");
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(socket.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut chunked = false;
    let mut ndjson = false;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        chunked |= header == "transfer-encoding: chunked";
        ndjson |= header == "content-type: application/x-ndjson";
    }
    assert!(chunked && ndjson, "a chunked NDJSON stream");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut pending = Vec::new();
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                break;
            };
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            if reader.read_exact(&mut chunk).is_err() {
                break;
            }
            pending.extend_from_slice(&chunk[..n]);
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let v: Value = serde_json::from_slice(&line).expect("each line is JSON");
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    Watcher { socket, rx }
}

/// The next `n` non-BOOKMARK events: (type, name, revision).
pub(crate) fn next_events(w: &Watcher, n: usize) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let v = w.rx.recv_timeout(Duration::from_secs(120)).expect("a watch event");
        let kind = v["type"].as_str().unwrap().to_string();
        if kind == "BOOKMARK" {
            continue;
        }
        let rv: u64 = v["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        out.push((kind, v["object"]["metadata"]["name"].as_str().unwrap().to_string(), rv));
    }
    out
}

#[test]
fn watch_sees_every_later_event_in_order_across_a_reconnect() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path(), [store_flag(home.path())]);
    let c = client();
    let coll = server.api("/namespaces/default/egressrules");
    let one = |name: &str| server.api(&format!("/namespaces/default/egressrules/{name}"));
    for name in ["a", "b", "c"] {
        assert_eq!(
            c.post(&coll).json(&egress(name, 1)).send().unwrap().status(),
            StatusCode::CREATED
        );
    }
    let (_, list) = body(c.get(&coll).send().unwrap());
    let n: u64 = list["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();

    // From the beginning: the three creates.
    let from_start = watch(&format!("{coll}?watch=true"));
    let seen = next_events(&from_start, 3);
    let names: Vec<_> = seen.iter().map(|(t, n, _)| format!("{t} {n}")).collect();
    assert_eq!(names, ["ADDED a", "ADDED b", "ADDED c"]);
    drop(from_start);

    // From the list's revision: only what happens after.
    let events = watch(&format!("{coll}?watch=true&resourceVersion={n}"));
    let (_, a) = body(c.get(one("a")).send().unwrap());
    let mut a2 = a.clone();
    a2["spec"]["ports"][0]["port"] = json!(2);
    assert_eq!(c.put(one("a")).json(&a2).send().unwrap().status(), StatusCode::OK);
    assert_eq!(c.delete(one("b")).send().unwrap().status(), StatusCode::OK);
    assert_eq!(
        c.post(&coll).json(&egress("d", 1)).send().unwrap().status(),
        StatusCode::CREATED
    );
    // An event in another namespace is not in this watch.
    let mut elsewhere = egress("e", 1);
    elsewhere["metadata"]["namespace"] = json!("other");
    let r = c
        .post(server.api("/namespaces/other/egressrules"))
        .json(&elsewhere)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(c.delete(one("c")).send().unwrap().status(), StatusCode::OK);
    let seen = next_events(&events, 4);
    let names: Vec<_> = seen.iter().map(|(t, n, _)| format!("{t} {n}")).collect();
    assert_eq!(names, ["MODIFIED a", "DELETED b", "ADDED d", "DELETED c"]);
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "revisions increase: {seen:?}");
    assert!(seen[0].2 > n);
    let last_seen = seen[1].2; // pretend the client saw only two events before it went away
    drop(events);

    // Changes while no one watches; then a reconnect from the last revision seen misses nothing and
    // repeats nothing.
    assert_eq!(
        c.post(&coll).json(&egress("f", 1)).send().unwrap().status(),
        StatusCode::CREATED
    );
    let again = watch(&format!("{coll}?watch=true&resourceVersion={last_seen}"));
    let resumed = next_events(&again, 3);
    let names: Vec<_> = resumed.iter().map(|(t, n, _)| format!("{t} {n}")).collect();
    assert_eq!(names, ["ADDED d", "DELETED c", "ADDED f"]);
    assert_eq!(resumed[0].2, seen[2].2);
    drop(again);

    // Cluster-wide watch sees both namespaces.
    let everywhere = watch(&format!(
        "{}?watch=true&resourceVersion={n}",
        server.api("/egressrules")
    ));
    let all = next_events(&everywhere, 6);
    assert!(all.iter().any(|(_, name, _)| name == "e"), "{all:?}");
    drop(everywhere);

    // Every watch thread ends once its client is gone.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let metrics = c.get(format!("{}/metrics", server.url)).send().unwrap().text().unwrap();
        if metrics.contains("\nmeshctl_watches_open 0\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watches still open after their clients left:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sigterm_stops_the_server_cleanly_even_with_a_watch_open() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path(), [store_flag(home.path())]);
    let c = client();
    let coll = server.api("/namespaces/default/egressrules");
    assert_eq!(
        c.post(&coll).json(&egress("a", 1)).send().unwrap().status(),
        StatusCode::CREATED
    );
    let events = watch(&format!("{coll}?watch=true"));
    assert_eq!(next_events(&events, 1)[0].1, "a");
    let (code, log) = server.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("meshctl serve: stopped"), "{log}");
    // The stream ended with the server.
    loop {
        match events.rx.recv_timeout(Duration::from_secs(120)) {
            Ok(v) => assert_ne!(v["type"], "ADDED", "no new events: {v}"),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("the watch stream did not end: {e}"),
        }
    }
}

#[test]
fn every_acknowledged_create_survives_sigkill() {
    let home = tempfile::tempdir().unwrap();
    let store = store_flag(home.path());
    let mut server = serve(home.path(), [store.clone()]);
    let coll = server.api("/namespaces/default/egressrules");
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (acknowledged, count) = (acknowledged.clone(), count.clone());
        std::thread::spawn(move || {
            let c = client();
            for i in 0..100_000u32 {
                let name = format!("rule-{i}");
                match c.post(&coll).json(&egress(&name, 80)).send() {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        acknowledged.lock().unwrap().push(name);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // The server is gone (or answered without storing): stop.
                    _ => break,
                }
            }
        })
    };
    // Kill while creates are in flight.
    let deadline = Instant::now() + Duration::from_secs(300);
    while count.load(Ordering::SeqCst) < 30 {
        assert!(
            Instant::now() < deadline,
            "creates are not being acknowledged:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();
    writer.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 30);

    let server = serve(home.path(), [store]);
    let c = client();
    assert_eq!(
        c.get(format!("{}/readyz", server.url)).send().unwrap().status(),
        StatusCode::OK
    );
    let (code, list) = body(c.get(server.api("/namespaces/default/egressrules")).send().unwrap());
    assert_eq!(code, StatusCode::OK);
    let stored: std::collections::HashSet<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for name in &acknowledged {
        assert!(stored.contains(name), "{name} was acknowledged but is gone");
    }
    // At most the one create in flight at the kill may have landed without its answer.
    assert!(
        stored.len() <= acknowledged.len() + 1,
        "{} vs {}",
        stored.len(),
        acknowledged.len()
    );
    // The store still takes writes.
    assert_eq!(
        c.post(server.api("/namespaces/default/egressrules"))
            .json(&egress("after", 1))
            .send()
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
}
