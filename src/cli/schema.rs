//! `meshctl schema`: the JSON schema of rule documents, for editors and schema linters.

use std::io::Write;

use crate::cli::Outcome;
use crate::model::schema;

/// Print the JSON schema of rule documents
///
/// Editors that speak the YAML language server use it for completion and checks, e.g. with a
/// `# yaml-language-server: $schema=meshctl-rules.schema.json` comment in a rule file.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    out.write_all(schema::rule_document_pretty().as_bytes())?;
    out.flush()?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    //! The project's own rule files, converted from YAML to JSON the way a schema linter sees them,
    //! must satisfy the schema. (Here rather than in `model`, which does no I/O and knows no loader.)

    use std::path::{Path, PathBuf};

    use crate::load::emit::node_to_json as to_json;
    use crate::load::{self, yaml};
    use crate::model::schema;

    fn rule_files() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let inputs = load::files::collect(&[root.join("valid"), root.clone()], false).expect("testdata exists");
        inputs
            .into_iter()
            .filter_map(|i| match i {
                load::files::Input::File(p) => Some(p),
                load::files::Input::Stdin => None,
            })
            .collect()
    }

    #[test]
    fn the_valid_testdata_satisfies_the_schema() {
        let validator = jsonschema::draft202012::new(&schema::rule_document()).expect("the schema compiles");
        let mut checked = 0;
        for path in rule_files() {
            let text = std::fs::read_to_string(&path).expect("readable");
            let arena = bumpalo::Bump::new();
            let stream = yaml::parse_stream(&text, &arena, yaml::Limits::default());
            assert!(stream.problems.is_empty(), "{}: {:?}", path.display(), stream.problems);
            for doc in &stream.documents {
                let Some(root) = &doc.root else { continue };
                let json = to_json(root);
                let objects = match json["items"].as_array() {
                    Some(items) if json["kind"] == "List" => items.clone(),
                    _ => vec![json],
                };
                for object in objects {
                    // Files may also hold other objects (a Deployment, Mixer's `rule`): meshctl skips
                    // them, and the schema is only of traffic rules.
                    let is_rule = object["kind"]
                        .as_str()
                        .and_then(crate::model::Kind::from_kind_field)
                        .is_some();
                    if object["apiVersion"] != crate::model::API_VERSION || !is_rule {
                        continue;
                    }
                    let errors: Vec<String> = validator
                        .iter_errors(&object)
                        .map(|e| format!("{e} at {}", e.instance_path()))
                        .collect();
                    assert!(
                        errors.is_empty(),
                        "{} document {}: {errors:#?}",
                        path.display(),
                        doc.index
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 5, "only {checked} documents checked");
    }
}
