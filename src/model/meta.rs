//! Object metadata, as Kubernetes and Istio's config store kept it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::StringMap;

/// The namespace a rule lands in when neither the file nor `-n` names one.
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<StringMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<StringMap>,
    /// Set by the store: its revision at the object's last change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

impl Metadata {
    /// The fields the model knows, as YAML and JSON name them.
    pub const FIELDS: &'static [&'static str] = &[
        "name",
        "namespace",
        "labels",
        "annotations",
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
    ];

    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}
