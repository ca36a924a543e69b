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

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

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
// The two large specs are boxed: a RouteRule is over 1 kB inline, and lists of thousands of objects
// (a store listing, a file's rules) would otherwise move and zero that much per object of any kind.
pub enum Spec {
    DestinationPolicy(Box<DestinationPolicy>),
    EgressRule(EgressRule),
    RouteRule(Box<RouteRule>),
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

impl Resource {
    /// Decodes a JSON object whose kind is known, as the config store does for every object it reads
    /// back. Knowing the kind lets serde decode straight into that kind's spec type: the untagged
    /// [`Spec`] would have to buffer the whole object and try each kind in turn, which is both slow
    /// and ambiguous (most specs share field names). Unknown fields are refused, as in files; a `kind`
    /// field other than `kind`'s name is an error.
    ///
    /// This is not validation: the values are only decoded. Objects from outside (a request body)
    /// still go through `validate::check_object`.
    pub fn from_json(kind: Kind, json: &str) -> Result<Resource, serde_json::Error> {
        match kind {
            Kind::DestinationPolicy => decode(kind, json, Spec::DestinationPolicy),
            Kind::EgressRule => decode(kind, json, Spec::EgressRule),
            Kind::RouteRule => decode(kind, json, Spec::RouteRule),
        }
    }
}

/// The JSON form of one kind's object, for [`Resource::from_json`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw<'a, S> {
    api_version: String,
    /// Borrowed when it has no escapes (always, for the three kind names): nothing to allocate.
    #[serde(borrow)]
    kind: Cow<'a, str>,
    metadata: Metadata,
    spec: S,
}

fn decode<'a, S: Deserialize<'a>>(
    kind: Kind,
    json: &'a str,
    wrap: fn(S) -> Spec,
) -> Result<Resource, serde_json::Error> {
    let raw: Raw<'a, S> = serde_json::from_str(json)?;
    if raw.kind != kind.name() {
        return Err(serde::de::Error::custom(format_args!(
            "expected kind {}, found {}",
            kind.name(),
            raw.kind
        )));
    }
    Ok(Resource {
        api_version: raw.api_version,
        kind,
        metadata: raw.metadata,
        spec: wrap(raw.spec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::route_rule::{Delay, HttpFaultInjection};

    fn with_percent(percent: f64) -> Resource {
        Resource {
            api_version: API_VERSION.to_string(),
            kind: Kind::RouteRule,
            metadata: Metadata {
                name: Some("r".to_string()),
                ..Metadata::default()
            },
            spec: Spec::RouteRule(Box::new(RouteRule {
                http_fault: Some(HttpFaultInjection {
                    delay: Some(Delay {
                        percent: Some(percent),
                        fixed_delay: Some(Duration::new("1.5s")),
                        ..Delay::default()
                    }),
                    abort: None,
                }),
                ..RouteRule::default()
            })),
        }
    }

    #[test]
    fn from_json_reads_back_what_serialize_wrote() {
        for percent in [
            0.0,
            0.5,
            10.0,
            33.333_333_333_333_336,
            99.999_999_999_999_99,
            1e-300,
            1e21,
            0.1 + 0.2,
        ] {
            let r = with_percent(percent);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(Resource::from_json(Kind::RouteRule, &json).unwrap(), r, "{json}");
        }
    }

    #[test]
    fn from_json_refuses_another_kind_and_unknown_fields() {
        let json = serde_json::to_string(&with_percent(1.0)).unwrap();
        let err = Resource::from_json(Kind::EgressRule, &json).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let as_dp = json.replace("\"RouteRule\"", "\"DestinationPolicy\"");
        let err = Resource::from_json(Kind::RouteRule, &as_dp).unwrap_err();
        assert!(err.to_string().contains("expected kind RouteRule"), "{err}");
        let extra = json.replacen('{', "{\"status\":{},", 1);
        assert!(Resource::from_json(Kind::RouteRule, &extra).is_err());
    }

    proptest::proptest! {
        /// Every finite f64 survives the JSON round trip (-0.0 comes back as 0.0, which compares equal:
        /// whole numbers are written as integers).
        #[test]
        fn every_float_round_trips(bits in proptest::num::u64::ANY) {
            let percent = f64::from_bits(bits);
            proptest::prop_assume!(percent.is_finite());
            let r = with_percent(percent);
            let json = serde_json::to_string(&r).unwrap();
            let back = Resource::from_json(Kind::RouteRule, &json).unwrap();
            let Spec::RouteRule(rr) = back.spec else { panic!("not a route rule") };
            let got = rr.http_fault.unwrap().delay.unwrap().percent.unwrap();
            proptest::prop_assert_eq!(got, percent, "{}", json);
        }
    }
}
