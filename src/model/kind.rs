//! The kinds of traffic rule, and every name a user may type for one.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// The API group and version every traffic rule carries.
pub const API_VERSION: &str = "config.istio.io/v1alpha2";
/// The API group of Istio's config objects (traffic rules and Mixer's).
pub const API_GROUP: &str = "config.istio.io";

/// A kind of traffic rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    DestinationPolicy,
    EgressRule,
    RouteRule,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::RouteRule, Kind::EgressRule, Kind::DestinationPolicy];

    /// The `kind` field's value.
    pub fn name(self) -> &'static str {
        match self {
            Kind::DestinationPolicy => "DestinationPolicy",
            Kind::EgressRule => "EgressRule",
            Kind::RouteRule => "RouteRule",
        }
    }

    /// The plural used in REST paths (`egressrules`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::DestinationPolicy => "destinationpolicies",
            Kind::EgressRule => "egressrules",
            Kind::RouteRule => "routerules",
        }
    }

    /// The name istioctl printed in messages (`egress-rule/default/mysql`).
    pub fn istioctl_name(self) -> &'static str {
        match self {
            Kind::DestinationPolicy => "destination-policy",
            Kind::EgressRule => "egress-rule",
            Kind::RouteRule => "route-rule",
        }
    }

    /// Every name the command line accepts for this kind, the canonical one first.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Kind::DestinationPolicy => &[
                "destinationpolicy",
                "destinationpolicies",
                "destination-policy",
                "destination-policies",
                "dp",
                "dps",
            ],
            Kind::EgressRule => &["egressrule", "egressrules", "egress-rule", "egress-rules", "er", "ers"],
            Kind::RouteRule => &["routerule", "routerules", "route-rule", "route-rules", "rr", "rrs"],
        }
    }

    /// Looks up the `kind` field's value (exact, as the API server does).
    pub fn from_kind_field(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A command-line kind name that matches no kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind `{given}`{}", suggestion.map(|s| format!(": did you mean `{s}`?")).unwrap_or_default())]
pub struct UnknownKind {
    pub given: String,
    pub suggestion: Option<&'static str>,
}

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Accepts every alias, case-insensitively, and the `kind` field's own spelling (`EgressRule`).
    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        let lower = s.to_ascii_lowercase();
        for kind in Kind::ALL {
            if kind.aliases().contains(&lower.as_str()) {
                return Ok(kind);
            }
        }
        let candidates = Kind::ALL.iter().flat_map(|k| k.aliases().iter().copied());
        Err(UnknownKind {
            given: s.to_string(),
            suggestion: crate::suggest::did_you_mean(&lower, candidates),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_parses_back_to_its_kind() {
        for kind in Kind::ALL {
            for alias in kind.aliases() {
                assert_eq!(alias.parse::<Kind>(), Ok(kind), "{alias}");
                assert_eq!(alias.to_uppercase().parse::<Kind>(), Ok(kind), "{alias}");
            }
            assert_eq!(kind.name().parse::<Kind>(), Ok(kind));
        }
    }

    #[test]
    fn unknown_kind_suggests_the_nearest() {
        let err = "egresrules".parse::<Kind>().unwrap_err();
        assert_eq!(err.suggestion, Some("egressrules"));
        assert_eq!(
            err.to_string(),
            "unknown kind `egresrules`: did you mean `egressrules`?"
        );
    }
}
