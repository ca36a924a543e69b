//! Types shared by the three kinds: service references, string matches, labels.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Label and header maps. Ordered so that output is stable.
pub type StringMap = BTreeMap<String, String>;

/// `IstioService`: a service (and optionally a version, by labels) that a rule names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioService {
    /// The short name (`reviews`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Defaults to the rule's own namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Domain suffix used to build the FQDN (`svc.cluster.local`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The FQDN, or for an EgressRule a host name, wildcard domain, IP or CIDR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Labels selecting a version of the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<StringMap>,
}

impl IstioService {
    /// `name` or `service`, whichever the rule gave, for messages and summaries.
    pub fn display_name(&self) -> Option<&str> {
        self.service.as_deref().or(self.name.as_deref())
    }
}

/// How a header (or `uri`, `authority`, `scheme`, `method`) is matched: exactly one of exact, prefix,
/// regex. A plain string is shorthand for `exact`; which form the user wrote is kept so that the rule
/// round-trips unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StringMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
    /// Written as a bare string rather than `{exact: ...}`.
    pub shorthand: bool,
    /// Keys other than exact/prefix/regex, kept so validation can point at them.
    pub unknown_keys: Vec<String>,
}

impl StringMatch {
    pub const FIELDS: &'static [&'static str] = &["exact", "prefix", "regex"];
}

impl Serialize for StringMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.shorthand {
            if let Some(exact) = &self.exact {
                return s.serialize_str(exact);
            }
        }
        let count = [&self.exact, &self.prefix, &self.regex]
            .iter()
            .filter(|v| v.is_some())
            .count();
        let mut map = s.serialize_map(Some(count))?;
        for (key, value) in [("exact", &self.exact), ("prefix", &self.prefix), ("regex", &self.regex)] {
            if let Some(v) = value {
                map.serialize_entry(key, v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for StringMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMatch;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, or a mapping with one of exact, prefix, regex")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringMatch, E> {
                Ok(StringMatch {
                    exact: Some(v.to_string()),
                    shorthand: true,
                    ..StringMatch::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringMatch, A::Error> {
                let mut m = StringMatch::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "exact" => m.exact = Some(map.next_value()?),
                        "prefix" => m.prefix = Some(map.next_value()?),
                        "regex" => m.regex = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            m.unknown_keys.push(key);
                        }
                    }
                }
                Ok(m)
            }
        }
        d.deserialize_any(V)
    }
}

/// Writes a number that has no fraction as an integer (`percent: 10` stays `10`, not `10.0`), so a
/// rule read from a file is written back as it was.
pub fn whole_as_integer<S: serde::Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact in an f64
    match *value {
        None => s.serialize_none(),
        #[allow(clippy::cast_possible_truncation)]
        Some(v) if v.fract() == 0.0 && v.abs() < EXACT => s.serialize_i64(v as i64),
        Some(v) => s.serialize_f64(v),
    }
}
