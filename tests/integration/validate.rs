//! `meshctl validate` as CI runs it: exit codes, formats, inputs, ordering.

use serde_json::Value;

use crate::common::{meshctl, testdata};

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn diagnostics(stdout: &str) -> Vec<Value> {
    json_lines(stdout)
        .into_iter()
        .filter(|v| v["type"] == "diagnostic")
        .collect()
}

fn path(rel: &str) -> String {
    testdata(rel).display().to_string()
}

#[test]
fn valid_rules_pass_with_a_summary() {
    let out = meshctl(["validate", "-f", &path("valid"), "-f", &path("egress-rule-mysql.yaml")]).run();
    out.code(0);
    assert!(out.stdout.contains("0 errors"), "{}", out.stdout);
    assert!(out.stdout.contains("in 9 files"), "{}", out.stdout);
}

#[test]
fn the_readme_command_passes() {
    // README's first command: the top of testdata/ holds the walk-through's rules.
    let out = meshctl(["validate", "-f", "testdata/"])
        .current_dir(&crate::common::root())
        .run();
    out.code(0);
    assert!(
        out.stdout
            .contains("checked 3 documents in 3 files: 0 errors, 0 warnings"),
        "{}",
        out.stdout
    );
}

#[test]
fn errors_exit_1_and_name_file_line_column_and_field() {
    let out = meshctl(["validate", "-o", "json", "-f", &path("invalid/route-weight-range.yaml")]).run();
    out.code(1);
    let d = diagnostics(&out.stdout);
    assert_eq!(d.len(), 2, "{}", out.stdout);
    assert_eq!(d[0]["file"], path("invalid/route-weight-range.yaml"));
    assert_eq!(d[0]["line"], 11);
    assert_eq!(d[0]["column"], 13);
    assert_eq!(d[0]["field"], "spec.route[0].weight");
    assert_eq!(d[0]["code"], "E0304");
    assert_eq!(d[0]["severity"], "error");
    assert_eq!(d[0]["kind"], "RouteRule");
    assert_eq!(d[0]["name"], "reviews");
    assert_eq!(d[0]["document"], 1, "documents are counted from 1");
    assert_eq!(d[1]["field"], "spec.route[1].weight");
    assert_eq!(d[1]["line"], 14);
}

#[test]
fn a_missing_file_is_a_usage_error_that_names_it() {
    let out = meshctl(["validate", "-f", "no/such/rules.yaml"]).run();
    out.code(2);
    assert!(out.stderr.contains("no/such/rules.yaml"), "{}", out.stderr);
}

#[test]
fn bad_usage_exits_2() {
    meshctl(["validate"]).run().code(2);
    meshctl(["validate", "-f", &path("valid"), "-o", "xml"]).run().code(2);
    meshctl(["validate", "-f", &path("valid"), "--kinds", "egresrules"])
        .run()
        .code(2);
    meshctl(["validate", "-f", &path("valid"), "-j", "0"]).run().code(2);
}

#[test]
fn stdin_is_read_for_dash() {
    let rule = std::fs::read(testdata("invalid/egress-host-tcp.yaml")).unwrap();
    let out = meshctl(["validate", "-o", "json", "-f", "-"]).stdin(rule).run();
    out.code(1);
    let d = diagnostics(&out.stdout);
    assert_eq!(d[0]["file"], "<stdin>");
    assert_eq!(d[0]["code"], "E0503");
}

#[test]
fn warnings_pass_unless_strict() {
    let file = path("invalid/egress-open-all.yaml");
    let out = meshctl(["validate", "-o", "json", "-f", &file]).run();
    out.code(0);
    assert_eq!(diagnostics(&out.stdout)[0]["severity"], "warning");
    let strict = meshctl(["validate", "--strict", "-o", "json", "-f", &file]).run();
    strict.code(1);
    assert_eq!(diagnostics(&strict.stdout)[0]["severity"], "error");
}

#[test]
fn quiet_prints_nothing_when_clean() {
    let out = meshctl(["validate", "-q", "-f", &path("valid")]).run();
    out.code(0);
    assert_eq!(out.stdout, "");
}

#[test]
fn directories_recurse_only_with_r() {
    let flat = meshctl(["validate", "-o", "json", "-f", &path("")]).run();
    let deep = meshctl(["validate", "-o", "json", "-f", &path(""), "-R"]).run();
    let files = |o: &crate::common::Output| json_lines(&o.stdout).last().unwrap()["files"].as_u64().unwrap();
    assert_eq!(files(&flat), 3);
    assert!(files(&deep) > 80, "{}", files(&deep));
}

#[test]
fn kinds_narrows_what_is_checked() {
    let out = meshctl(["validate", "-o", "json", "--kinds", "egressrules", "-f", &path("valid")]).run();
    out.code(0);
    let summary = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(summary["checked"], 5, "{summary}");
    let all = meshctl(["validate", "-o", "json", "-f", &path("valid")]).run();
    let all_summary = json_lines(&all.stdout).pop().unwrap();
    assert_eq!(
        summary["checked"].as_u64().unwrap() + summary["skipped"].as_u64().unwrap(),
        all_summary["checked"].as_u64().unwrap() + all_summary["skipped"].as_u64().unwrap()
    );
}

#[test]
fn output_order_is_stable_across_thread_counts() {
    let dir = path("invalid");
    let one = meshctl(["validate", "-j", "1", "-o", "json", "-f", &dir]).run();
    let many = meshctl(["validate", "-j", "4", "-o", "json", "-f", &dir]).run();
    assert_eq!(one.code, 1);
    assert_eq!(one.stdout, many.stdout);
    let d = diagnostics(&one.stdout);
    let keys: Vec<(String, u64, u64)> = d
        .iter()
        .map(|v| {
            (
                v["file"].as_str().unwrap().to_string(),
                v["line"].as_u64().unwrap_or(0),
                v["column"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn a_rule_defined_in_two_files_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let rule = std::fs::read_to_string(testdata("egress-rule-mysql.yaml")).unwrap();
    std::fs::write(dir.path().join("a.yaml"), &rule).unwrap();
    std::fs::write(dir.path().join("b.yaml"), &rule).unwrap();
    let out = meshctl(["validate", "-o", "json", "-f", &dir.path().display().to_string()]).run();
    out.code(0);
    let d = diagnostics(&out.stdout);
    assert_eq!(d.len(), 1, "{}", out.stdout);
    assert_eq!(d[0]["code"], "W0003");
    assert!(d[0]["file"].as_str().unwrap().ends_with("b.yaml"));
    assert!(
        d[0]["help"].as_str().unwrap().contains("a.yaml:6:9"),
        "{}",
        d[0]["help"]
    );
}

#[test]
fn github_annotations() {
    let file = path("invalid/egress-duplicate-port.yaml");
    let workspace = crate::common::root().display().to_string();
    let out = meshctl(["validate", "-o", "github", "-f", &file])
        .env("GITHUB_WORKSPACE", &workspace)
        .current_dir(&std::env::temp_dir())
        .run();
    out.code(1);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .expect("an annotation");
    // The absolute path is made relative to the checkout, as annotations need.
    assert!(
        line.starts_with("::error file=testdata/invalid/egress-duplicate-port.yaml,line=13,col=11"),
        "{line}"
    );
    assert!(line.contains("port 443 is listed twice"), "{line}");
}

#[test]
fn sarif_for_code_scanning() {
    let out = meshctl(["validate", "-o", "sarif", "-f", &path("invalid/route-weight-sum.yaml")]).run();
    out.code(1);
    let v: Value = serde_json::from_str(&out.stdout).expect("SARIF is JSON");
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "E0401");
    let region = &results[0]["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], 8);
}

#[test]
fn text_is_plain_unless_a_terminal_or_forced() {
    let file = path("invalid/route-weight-sum.yaml");
    let plain = meshctl(["validate", "-f", &file]).run();
    assert!(!plain.stdout.contains('\u{1b}'), "{}", plain.stdout);
    assert!(plain.stdout.contains("error[E0401]"), "{}", plain.stdout);
    let forced = meshctl(["validate", "--color", "always", "-f", &file]).run();
    assert!(forced.stdout.contains('\u{1b}'), "{}", forced.stdout);
    let by_env = meshctl(["validate", "-f", &file]).env("CLICOLOR_FORCE", "1").run();
    assert!(by_env.stdout.contains('\u{1b}'), "{}", by_env.stdout);
    let vetoed = meshctl(["validate", "-f", &file])
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .run();
    assert!(!vetoed.stdout.contains('\u{1b}'), "{}", vetoed.stdout);
}

#[test]
fn every_invalid_example_fails_or_warns() {
    // Each file under testdata/invalid exists to show one problem: none may pass silently.
    for entry in std::fs::read_dir(testdata("invalid")).unwrap() {
        let file = entry.unwrap().path().display().to_string();
        let out = meshctl(["validate", "-o", "json", "-f", &file]).run();
        assert!(!diagnostics(&out.stdout).is_empty(), "{file} reported nothing");
        assert!(out.code == 0 || out.code == 1, "{file}: exit {}", out.code);
    }
}
