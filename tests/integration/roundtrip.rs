//! Rules round-trip: every valid rule, loaded into the model and written out as YAML or JSON, loads
//! back to the same object, and what the model writes is what the file said (no field dropped,
//! renamed or reformatted: durations keep their text, header matches their form).

use std::sync::Arc;

use meshctl::load::LoadOptions;
use meshctl::load::emit::{node_to_json, to_yaml};
use meshctl::load::yaml::{Limits, parse_stream};
use meshctl::model::{API_VERSION, Resource};
use meshctl::validate::check_file;
use serde_json::Value;

use crate::common::root;

fn rule_files() -> Vec<String> {
    let mut files: Vec<String> = ["testdata", "testdata/valid"]
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(root().join(dir))
                .unwrap_or_else(|e| panic!("{dir}: {e}"))
                .map(|e| e.unwrap_or_else(|e| panic!("{dir}: {e}")).path())
                .filter(|p| p.is_file())
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    files.sort();
    files
}

/// The clean rules of a text, as `meshctl validate` loads them.
fn load(name: &str, text: &[u8]) -> Vec<Resource> {
    let report = check_file(&Arc::from(name), text, &LoadOptions::default());
    let errors: Vec<_> = report.diagnostics.iter().map(|d| format!("{d:?}")).collect();
    assert!(errors.is_empty(), "{name}:\n{}", errors.join("\n"));
    report.resources
}

/// The traffic-rule objects of a file as plain JSON, in file order, unwrapping Lists.
fn source_objects(text: &str) -> Vec<Value> {
    let arena = bumpalo::Bump::new();
    let stream = parse_stream(text, &arena, Limits::default());
    let mut out = Vec::new();
    for doc in &stream.documents {
        let Some(root) = &doc.root else { continue };
        let value = node_to_json(root);
        let objects = if value["kind"] == "List" {
            value["items"].as_array().cloned().unwrap_or_default()
        } else {
            vec![value]
        };
        out.extend(objects.into_iter().filter(|o| {
            o["apiVersion"] == API_VERSION
                && ["RouteRule", "EgressRule", "DestinationPolicy"].contains(&o["kind"].as_str().unwrap_or(""))
        }));
    }
    out
}

#[test]
fn the_model_keeps_every_field_as_written() {
    let mut seen = 0;
    for file in rule_files() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let resources = load(&file, text.as_bytes());
        let sources = source_objects(&text);
        assert_eq!(resources.len(), sources.len(), "{file}");
        for (resource, source) in resources.iter().zip(&sources) {
            let written = serde_json::to_value(resource).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(&written, source, "{file}: {}", resource.name());
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} rules in testdata");
}

#[test]
fn yaml_and_json_output_load_back_unchanged() {
    for file in rule_files() {
        let text = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        for resource in load(&file, &text) {
            let value = serde_json::to_value(&resource).unwrap_or_else(|e| panic!("{file}: {e}"));
            let yaml = to_yaml(&value);
            assert_eq!(
                load("out.yaml", yaml.as_bytes()),
                vec![resource.clone()],
                "{file}, as YAML:\n{yaml}"
            );
            let json = serde_json::to_string_pretty(&value).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(
                load("out.json", json.as_bytes()),
                vec![resource.clone()],
                "{file}, as JSON:\n{json}"
            );
        }
    }
}
