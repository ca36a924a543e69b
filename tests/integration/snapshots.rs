//! Every file under testdata/valid and testdata/invalid, checked and rendered as `meshctl validate`
//! prints it (file, line, column, code, message, the source line, the field), compared with the
//! snapshot under tests/integration/snapshots/. A changed diagnostic fails here until the snapshot is
//! reviewed (`cargo insta review`, or `INSTA_UPDATE=always cargo test` and a look at the diff).

use std::path::Path;
use std::sync::Arc;

use meshctl::load::LoadOptions;
use meshctl::validate::render::{Summary, text};
use meshctl::validate::{check_file, duplicate_definitions};

use crate::common::root;

/// Renders one file's report exactly as the text output does, without colour.
fn rendered(rel: &str) -> String {
    let bytes = std::fs::read(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let name: Arc<str> = Arc::from(rel);
    let mut report = check_file(&name, &bytes, &LoadOptions::default());
    // As the command does: names defined twice are found across all files, here one.
    report
        .diagnostics
        .extend(duplicate_definitions(std::slice::from_ref(&report.definitions)));
    report.diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let mut summary = Summary {
        files: 1,
        checked: report.counts.checked,
        skipped: report.counts.skipped,
        empty: report.counts.empty,
        ..Summary::default()
    };
    summary.count(&report.diagnostics);
    let mut out = Vec::new();
    let opts = text::TextOptions {
        color: false,
        quiet: false,
    };
    text::render(&mut out, &report.diagnostics, &summary, &opts).unwrap_or_else(|e| panic!("{rel}: {e}"));
    String::from_utf8(out).unwrap_or_else(|e| panic!("{rel}: output is not UTF-8: {e}"))
}

fn files_in(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| {
            let name = e.unwrap_or_else(|e| panic!("{dir}: {e}")).file_name();
            format!("{dir}/{}", name.to_string_lossy())
        })
        .collect();
    files.sort();
    files
}

/// The snapshot's name: the file's path with `/` and `.` made safe for a file name.
fn snapshot_name(rel: &str) -> String {
    rel.trim_start_matches("testdata/").replace(['/', '.'], "__")
}

fn check_all(dir: &str) {
    let files = files_in(dir);
    assert!(!files.is_empty(), "{dir} is empty");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for rel in &files {
            insta::assert_snapshot!(snapshot_name(rel), rendered(rel), rel);
        }
    });
}

#[test]
fn valid_files_report_no_errors() {
    for rel in files_in("testdata/valid") {
        assert!(rendered(&rel).contains(" 0 errors"), "{rel}:\n{}", rendered(&rel));
    }
    check_all("testdata/valid");
}

#[test]
fn invalid_files_match_their_snapshots() {
    for rel in files_in("testdata/invalid") {
        let out = rendered(&rel);
        assert!(
            out.contains("error[") || out.contains("warning["),
            "{rel} reports nothing:\n{out}"
        );
    }
    check_all("testdata/invalid");
}

#[test]
fn every_snapshot_has_its_file() {
    // A snapshot left behind by a renamed or deleted test file would never be checked again.
    let dir = root().join("tests/integration/snapshots");
    let mut wanted: Vec<String> = files_in("testdata/valid")
        .into_iter()
        .chain(files_in("testdata/invalid"))
        .map(|rel| format!("{}.snap", snapshot_name(&rel)))
        .collect();
    wanted.sort();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let name = entry
            .unwrap_or_else(|e| panic!("{e}"))
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".snap") {
            assert!(
                wanted.binary_search(&name).is_ok(),
                "stale snapshot {name}: its testdata file is gone"
            );
        }
    }
}
