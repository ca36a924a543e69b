//! The config objects: metadata and the three kinds of traffic rule. No I/O here.
//!
//! Every field is optional in the types so that a rule round-trips exactly as written (a field that was
//! absent stays absent); what is required is checked by `validate`, which can then say so with the
//! field's position instead of failing the whole document.

pub mod common;
pub mod destination_policy;
pub mod duration;
pub mod egress_rule;
pub mod kind;
pub mod meta;
pub mod route_rule;
pub mod schema;

use serde::Serialize;

pub use common::{IstioService, StringMap, StringMatch};
pub use destination_policy::DestinationPolicy;
pub use duration::Duration;
pub use egress_rule::{EgressRule, Protocol};
pub use kind::{API_GROUP, API_VERSION, Kind};
pub use meta::Metadata;
pub use route_rule::RouteRule;

/// One config object: a traffic rule with its metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub api_version: String,
    pub kind: Kind,
    pub metadata: Metadata,
    pub spec: Spec,
}

/// The spec of one of the three kinds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
// A RouteRule is the largest spec by far; boxing it would add an allocation to every rule for the sake of
// the two small kinds, and specs are not stored in bulk where the size would matter.
#[allow(clippy::large_enum_variant)]
pub enum Spec {
    DestinationPolicy(DestinationPolicy),
    EgressRule(EgressRule),
    RouteRule(RouteRule),
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::DestinationPolicy(_) => Kind::DestinationPolicy,
            Spec::EgressRule(_) => Kind::EgressRule,
            Spec::RouteRule(_) => Kind::RouteRule,
        }
    }
}

impl Resource {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    pub fn namespace(&self) -> &str {
        self.metadata.namespace_or_default()
    }

    /// `egress-rule/default/mysql`, as istioctl named objects in its messages.
    pub fn istioctl_ref(&self) -> String {
        format!("{}/{}/{}", self.kind.istioctl_name(), self.namespace(), self.name())
    }
}
