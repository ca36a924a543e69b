//! `meshctl validate -o sarif` as GitHub code scanning takes it: the real binary's logs are valid
//! against the OASIS SARIF 2.1.0 schema (vendored in tests/data, see its README) and meet the
//! upload requirements the schema leaves out.

use std::collections::HashSet;
use std::sync::LazyLock;

use jsonschema::{Draft, Validator};
use serde_json::{Value, json};

use crate::common::{Output, meshctl, root, testdata};

/// The `language` pattern of the 2.1.0 schema has a stray `]`, which ECMAScript only takes outside
/// Unicode mode and jsonschema's `regex` format check (run on every schema it compiles) rejects.
/// SARIF 2.1.0 Errata 01 fixed it to this; no meshctl log has a `language`.
const BROKEN_LANGUAGE: &str = r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#;
const ERRATA_LANGUAGE: &str = r#""^[a-zA-Z]{2}(-[a-zA-Z]{2})?$""#;

/// The vendored file, as it is.
fn vendored_text() -> String {
    let path = root().join("tests/data/sarif-schema-2.1.0.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The vendored schema with the errata's `language` pattern.
static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let text = vendored_text().replace(BROKEN_LANGUAGE, ERRATA_LANGUAGE);
    serde_json::from_str(&text).expect("the SARIF schema is JSON")
});

/// Draft-07 as the schema declares, with `format` checked (`uri-reference` for artifact URIs).
/// Without jsonschema's default features nothing is fetched: every `$ref` must be local.
static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
    jsonschema::options()
        .with_draft(Draft::Draft7)
        .should_validate_formats(true)
        .offline()
        .build(&SCHEMA)
        .expect("the SARIF schema compiles offline")
});

/// Every schema error in `log`, one a line with where it is.
fn schema_errors(log: &Value) -> Vec<String> {
    VALIDATOR
        .iter_errors(log)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// What GitHub code scanning requires of an upload beyond the schema (its "SARIF support for code
/// scanning" page, and the SARIF multitool's GH rules): the problems found, one a line.
fn github_problems(log: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if log["version"] != "2.1.0" {
        problems.push(format!("version is {}", log["version"]));
    }
    let Some(runs) = log["runs"].as_array().filter(|r| !r.is_empty()) else {
        problems.push("no runs".to_string());
        return problems;
    };
    for (r, run) in runs.iter().enumerate() {
        let driver = &run["tool"]["driver"];
        if driver["name"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("runs[{r}]: tool.driver.name is missing"));
        }
        let rules = driver["rules"].as_array().map(Vec::as_slice).unwrap_or_default();
        let ids: Vec<&str> = rules.iter().filter_map(|rule| rule["id"].as_str()).collect();
        if ids.len() != rules.len() || ids.iter().collect::<HashSet<_>>().len() != ids.len() {
            problems.push(format!("runs[{r}]: rule ids are missing or repeated: {ids:?}"));
        }
        let results = run["results"].as_array().map(Vec::as_slice).unwrap_or_default();
        if results.len() > 25_000 {
            problems.push(format!("runs[{r}]: {} results, over GitHub's 25000", results.len()));
        }
        for (i, result) in results.iter().enumerate() {
            let at = format!("runs[{r}].results[{i}]");
            match result["ruleId"].as_str() {
                Some(id) if ids.contains(&id) => {
                    if let Some(index) = result.get("ruleIndex") {
                        let named = index.as_u64().and_then(|n| ids.get(usize::try_from(n).ok()?));
                        if named != Some(&id) {
                            problems.push(format!("{at}: ruleIndex {index} is not rule {id}"));
                        }
                    }
                }
                other => problems.push(format!("{at}: ruleId {other:?} is not in tool.driver.rules")),
            }
            if result["message"]["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
                problems.push(format!("{at}: no message.text"));
            }
            let locations = result["locations"].as_array().map(Vec::as_slice).unwrap_or_default();
            if locations.is_empty() {
                problems.push(format!("{at}: no locations"));
            }
            for (l, location) in locations.iter().enumerate() {
                let physical = &location["physicalLocation"];
                let at = format!("{at}.locations[{l}].physicalLocation");
                match physical["artifactLocation"]["uri"].as_str() {
                    Some(uri) => {
                        if let Some(why) = not_relative(uri) {
                            problems.push(format!("{at}: uri {uri:?} {why}"));
                        }
                    }
                    None => problems.push(format!("{at}: no artifactLocation.uri")),
                }
                let region = &physical["region"];
                let start_line = region["startLine"].as_u64();
                if start_line.is_none_or(|n| n < 1) {
                    problems.push(format!("{at}: region.startLine is {}", region["startLine"]));
                }
                if let (Some(start), Some(end)) = (start_line, region["endLine"].as_u64()) {
                    if end < start {
                        problems.push(format!(
                            "{at}: region ends (line {end}) before it starts (line {start})"
                        ));
                    }
                }
                if region
                    .get("startColumn")
                    .is_some_and(|c| c.as_u64().is_none_or(|c| c < 1))
                {
                    problems.push(format!("{at}: region.startColumn is {}", region["startColumn"]));
                }
            }
        }
    }
    problems
}

/// Why `uri` is not a relative reference from the repository root, as code scanning needs.
fn not_relative(uri: &str) -> Option<&'static str> {
    let first_segment = uri.split('/').next().unwrap_or_default();
    if uri.is_empty() {
        Some("is empty")
    } else if first_segment.contains(':') {
        Some("has a scheme (or a drive letter)")
    } else if uri.starts_with('/') {
        Some("is an absolute path")
    } else if uri.contains('\\') {
        Some("has a backslash")
    } else if uri.starts_with("./") {
        Some("starts with ./")
    } else {
        None
    }
}

/// Runs `meshctl validate -o sarif` with `args` from the repository root and checks the log every
/// way: it is returned for the case's own assertions.
fn sarif(args: &[&str], stdin: Option<&[u8]>) -> Value {
    let mut cmd = ["validate", "-o", "sarif"].to_vec();
    cmd.extend_from_slice(args);
    let mut run = meshctl(&cmd).current_dir(&root());
    if let Some(input) = stdin {
        run = run.stdin(input);
    }
    checked(&run.run(), &cmd)
}

fn checked(out: &Output, cmd: &[&str]) -> Value {
    assert!(
        out.code == 0 || out.code == 1,
        "{cmd:?}: exit {}\n{}",
        out.code,
        out.stderr
    );
    let log: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{cmd:?}: not JSON: {e}\n{}", out.stdout));
    let errors = schema_errors(&log);
    assert!(
        errors.is_empty(),
        "{cmd:?}: not valid SARIF 2.1.0:\n{}\n--- log\n{}",
        errors.join("\n"),
        out.stdout
    );
    let problems = github_problems(&log);
    assert!(
        problems.is_empty(),
        "{cmd:?}: not accepted by code scanning:\n{}\n--- log\n{}",
        problems.join("\n"),
        out.stdout
    );
    log
}

fn results(log: &Value) -> &[Value] {
    log["runs"][0]["results"].as_array().expect("results")
}

fn rule_ids(log: &Value) -> Vec<&str> {
    results(log).iter().map(|r| r["ruleId"].as_str().unwrap()).collect()
}

fn uri(result: &Value) -> &str {
    result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
}

#[test]
fn the_vendored_schema_is_the_official_one_and_self_contained() {
    assert_eq!(SCHEMA["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(
        SCHEMA["$id"],
        "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json"
    );
    assert_eq!(SCHEMA["properties"]["version"]["enum"], json!(["2.1.0"]));
    jsonschema::draft7::meta::validate(&SCHEMA).expect("valid against the draft-07 meta-schema");
    // The file as published fails that only for the errata's pattern, used twice.
    let text = vendored_text();
    assert_eq!(text.matches(BROKEN_LANGUAGE).count(), 2);
    let published: Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = jsonschema::draft7::meta::validator()
        .iter_errors(&published)
        .map(|e| e.instance_path().to_string())
        .collect();
    assert_eq!(
        errors,
        [
            "/definitions/run/properties/language/pattern",
            "/definitions/toolComponent/properties/language/pattern"
        ]
    );
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                out.extend(m.get("$ref").and_then(Value::as_str));
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&SCHEMA, &mut all);
    assert!(all.len() > 100, "{} refs", all.len());
    let remote: Vec<_> = all.iter().filter(|r| !r.starts_with("#/definitions/")).collect();
    assert!(remote.is_empty(), "non-local $refs: {remote:?}");
}

const PHYSICAL: &str = "/runs/0/results/0/locations/0/physicalLocation";

/// What a broken copy lacks, and how it is made from a good log.
type Breakage = (&'static str, fn(&mut Value));

fn first_result(log: &mut Value) -> &mut Value {
    &mut log["runs"][0]["results"][0]
}

fn first_location(log: &mut Value) -> &mut Value {
    log.pointer_mut(PHYSICAL).expect("a physical location")
}

#[test]
fn the_checks_catch_broken_logs() {
    // The schema and the code scanning checks both have teeth: a valid log, then broken copies.
    let log = sarif(&["-f", "testdata/invalid/route-weight-range.yaml"], None);
    let broken = |edit: fn(&mut Value)| {
        let mut copy = log.clone();
        edit(&mut copy);
        copy
    };
    let against_the_schema: [Breakage; 5] = [
        ("no tool", |l| {
            drop(l["runs"][0].as_object_mut().unwrap().remove("tool"))
        }),
        ("a level SARIF has not", |l| first_result(l)["level"] = json!("fatal")),
        ("line 0", |l| first_location(l)["region"]["startLine"] = json!(0)),
        ("a URI with a space", |l| {
            first_location(l)["artifactLocation"]["uri"] = json!("a b.yaml")
        }),
        ("an unknown property", |l| first_result(l)["line"] = json!(3)),
    ];
    for (what, edit) in against_the_schema {
        assert!(
            !schema_errors(&broken(edit)).is_empty(),
            "the schema let {what} through"
        );
    }
    let against_code_scanning: [Breakage; 7] = [
        ("an unknown rule", |l| first_result(l)["ruleId"] = json!("E9999")),
        ("a wrong rule index", |l| first_result(l)["ruleIndex"] = json!(0)),
        ("no message text", |l| first_result(l)["message"] = json!({"id": "x"})),
        ("no locations", |l| first_result(l)["locations"] = json!([])),
        ("no region", |l| {
            drop(first_location(l).as_object_mut().unwrap().remove("region"))
        }),
        ("a file URI", |l| {
            first_location(l)["artifactLocation"]["uri"] = json!("file:///work/a.yaml")
        }),
        ("an absolute path", |l| {
            first_location(l)["artifactLocation"]["uri"] = json!("/work/a.yaml")
        }),
    ];
    for (what, edit) in against_code_scanning {
        let copy = broken(edit);
        // What the schema allows: these checks are needed on top of it.
        assert!(schema_errors(&copy).is_empty(), "the schema alone catches {what}");
        assert!(
            !github_problems(&copy).is_empty(),
            "the code scanning checks let {what} through"
        );
    }
}

#[test]
fn errors_with_regions_and_fields() {
    let log = sarif(&["-f", "testdata/invalid/route-weight-range.yaml"], None);
    assert_eq!(rule_ids(&log), ["E0304", "E0304"]);
    let r = &results(&log)[0];
    assert_eq!(r["level"], "error");
    assert_eq!(uri(r), "testdata/invalid/route-weight-range.yaml");
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"],
        json!({"startLine": 11, "startColumn": 13, "endLine": 11, "endColumn": 16})
    );
    assert_eq!(
        r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "spec.route[0].weight"
    );
    assert_eq!(log["runs"][0]["properties"]["summary"]["errors"], 2);
}

#[test]
fn warnings() {
    let open = sarif(&["-f", "testdata/invalid/egress-open-all.yaml"], None);
    assert_eq!(rule_ids(&open), ["W0002"]);
    assert_eq!(results(&open)[0]["level"], "warning");
    // A help line is part of the message.
    let text = results(&open)[0]["message"]["text"].as_str().unwrap();
    assert!(text.contains("\nhelp: "), "{text}");

    let duplicate = sarif(&["-f", "testdata/invalid/duplicate-name.yaml"], None);
    assert_eq!(rule_ids(&duplicate), ["W0003"]);
    assert_eq!(uri(&results(&duplicate)[0]), "testdata/invalid/duplicate-name.yaml");

    let strict = sarif(&["--strict", "-f", "testdata/invalid/duplicate-name.yaml"], None);
    assert_eq!(results(&strict)[0]["level"], "error");
}

#[test]
fn a_file_that_is_not_utf8() {
    // No snippet can be shown for it; the result still has its place.
    let log = sarif(&["-f", "testdata/invalid/invalid-utf8.yaml"], None);
    assert_eq!(rule_ids(&log), ["E0002"]);
    assert_eq!(uri(&results(&log)[0]), "testdata/invalid/invalid-utf8.yaml");
    assert_eq!(
        results(&log)[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        4
    );
}

#[test]
fn standard_input() {
    let input = std::fs::read(testdata("invalid/route-weight-range.yaml")).unwrap();
    let log = sarif(&["-f", "-"], Some(&input));
    assert_eq!(rule_ids(&log), ["E0304", "E0304"]);
    for r in results(&log) {
        assert_eq!(uri(r), "stdin");
    }
}

#[test]
fn a_clean_file_has_no_results() {
    let log = sarif(&["-f", "testdata/valid/bookinfo-rules.yaml"], None);
    assert!(results(&log).is_empty());
    // The rules are listed all the same, so code scanning can close fixed alerts.
    assert!(!log["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap().is_empty());
    let all_valid = sarif(&["-f", "testdata/valid"], None);
    assert!(results(&all_valid).is_empty());
}

#[test]
fn every_invalid_example_in_one_log() {
    // All the invalid examples in one log: each file has results, under a relative URI that names it.
    let log = sarif(&["-f", "testdata/invalid"], None);
    let count = std::fs::read_dir(testdata("invalid")).unwrap().count();
    let files: HashSet<&str> = results(&log).iter().map(uri).collect();
    assert_eq!(files.len(), count, "one file or more raised nothing: {files:?}");
    for file in files {
        assert!(root().join(file).is_file(), "{file} is not a file under the repository");
    }
}

#[test]
fn absolute_paths_in_the_checkout_become_relative() {
    let file = testdata("invalid/egress-open-all.yaml").display().to_string();
    // Under the working directory.
    let log = sarif(&["-f", &file], None);
    assert_eq!(uri(&results(&log)[0]), "testdata/invalid/egress-open-all.yaml");
    // Under GITHUB_WORKSPACE, run from elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let cmd = ["validate", "-o", "sarif", "-f", &file];
    let out = meshctl(cmd)
        .env("GITHUB_WORKSPACE", &root().display().to_string())
        .current_dir(elsewhere.path())
        .run();
    let log = checked(&out, &cmd);
    assert_eq!(uri(&results(&log)[0]), "testdata/invalid/egress-open-all.yaml");
    assert!(root().join(uri(&results(&log)[0])).is_file());
}
