//! The JSON Schema (draft 2020-12) of a rule document, for editors and schema linters.
//!
//! The schemas of `metadata` and of each kind's `spec` are derived from the model types with
//! `schemars`, so they cannot drift from what the loader accepts; only the top level (apiVersion,
//! kind, and which spec goes with which kind) and the two types with hand-written serde impls
//! ([`Duration`], [`StringMatch`]) are written here. The schema checks shape; `meshctl validate` also
//! checks meaning (weights summing to 100, host names, ports in range, ...).

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

use super::destination_policy::LbPolicy;
use super::{API_VERSION, DestinationPolicy, Duration, EgressRule, Kind, Metadata, Protocol, RouteRule, StringMatch};

/// The meta-schema the schema declares.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// What [`super::duration::parse_duration`] accepts: one or more `<number><unit>` parts, the number
/// with at most one decimal point, surrounding whitespace allowed (the parser trims it).
pub const DURATION_PATTERN: &str = r"^\s*(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h|d))+\s*$";

/// The schema of one rule document, as a JSON value.
pub fn rule_document() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let metadata = generator.subschema_for::<Metadata>().to_value();
    // Each kind with the spec fields that `meshctl validate` always requires.
    let specs: Vec<(Kind, Value, &[&str])> = vec![
        (
            Kind::RouteRule,
            generator.subschema_for::<RouteRule>().to_value(),
            &["destination"],
        ),
        (
            Kind::EgressRule,
            generator.subschema_for::<EgressRule>().to_value(),
            &["destination", "ports"],
        ),
        (
            Kind::DestinationPolicy,
            generator.subschema_for::<DestinationPolicy>().to_value(),
            &["destination"],
        ),
    ];
    let mut defs = generator.take_definitions(true);
    refine(&mut defs);

    let kinds: Vec<&str> = specs.iter().map(|(k, _, _)| k.name()).collect();
    let by_kind: Vec<Value> = specs
        .into_iter()
        .map(|(kind, spec_ref, required)| {
            json!({
                "if": {
                    "properties": { "kind": { "const": kind.name() } },
                    "required": ["kind"]
                },
                "then": {
                    "properties": { "spec": with_required(spec_ref, required) }
                }
            })
        })
        .collect();

    json!({
        "$schema": DRAFT_2020_12,
        "title": "meshctl traffic rule",
        "description": format!(
            "A {API_VERSION} traffic rule: RouteRule, EgressRule or DestinationPolicy. \
             This schema checks shape; `meshctl validate` also checks Istio's semantics."
        ),
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": { "const": API_VERSION },
            "kind": { "enum": kinds },
            "metadata": with_required(metadata, &["name"]),
            "spec": {
                "description": "The rule itself; its fields depend on `kind`.",
                "type": "object"
            }
        },
        "additionalProperties": false,
        "allOf": by_kind,
        "$defs": defs
    })
}

/// The schema as `meshctl schema` prints it: pretty, with a trailing newline.
pub fn rule_document_pretty() -> String {
    // Serializing a `Value` cannot fail: its map keys are strings.
    let mut text = serde_json::to_string_pretty(&rule_document()).unwrap_or_default();
    text.push('\n');
    text
}

/// `{"$ref": ...}` plus `required`, which 2020-12 allows beside a `$ref`.
fn with_required(mut schema: Value, required: &[&str]) -> Value {
    if let Value::Object(map) = &mut schema {
        map.insert("required".to_string(), json!(required));
    }
    schema
}

/// Closed sets that the model keeps as strings (so that validation can explain a wrong value) but
/// that an editor can offer: load-balancing names, and egress protocols in any case.
fn refine(defs: &mut Map<String, Value>) {
    if let Some(name) = property_mut(defs, "LoadBalancing", "name") {
        *name = json!({
            "description": "The load-balancing policy.",
            "enum": LbPolicy::NAMES
        });
    }
    if let Some(protocol) = property_mut(defs, "EgressPort", "protocol") {
        *protocol = json!({
            "description": format!("One of {}, in any case.", Protocol::NAMES.join(", ")),
            "type": "string",
            "pattern": case_insensitive_choice(Protocol::NAMES),
            "examples": Protocol::NAMES
        });
    }
}

fn property_mut<'a>(defs: &'a mut Map<String, Value>, def: &str, property: &str) -> Option<&'a mut Value> {
    defs.get_mut(def)?.get_mut("properties")?.get_mut(property)
}

/// `^(?:[hH][tT][tT][pP]|...)$`: JSON Schema's regex dialect has no case-insensitive flag.
fn case_insensitive_choice(words: &[&str]) -> String {
    let alternatives: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    format!("^(?:{})$", alternatives.join("|"))
}

// === impl JsonSchema for the types with hand-written serde ===

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::Duration").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> schemars::Schema {
        json_schema!({
            "description": "A duration in Istio's form: a number and a unit (h, m, s, ms, us, ns, d), \
                            parts may be combined.",
            "type": "string",
            "pattern": DURATION_PATTERN,
            "examples": ["10s", "1.5s", "500ms", "1h30m"]
        })
    }
}

impl JsonSchema for StringMatch {
    fn schema_name() -> Cow<'static, str> {
        "StringMatch".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::StringMatch").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> schemars::Schema {
        let properties: Map<String, Value> = StringMatch::FIELDS
            .iter()
            .map(|f| (f.to_string(), json!({ "type": "string" })))
            .collect();
        json_schema!({
            "description": "How a value is matched: a string (exact match), or a mapping with exactly one of \
                            exact, prefix, regex.",
            "oneOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": properties,
                    "additionalProperties": false,
                    "minProperties": 1,
                    "maxProperties": 1
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::Serialize;
    use serde::de::{self, DeserializeOwned, Visitor};

    use super::*;

    fn validator() -> jsonschema::Validator {
        jsonschema::draft202012::new(&rule_document()).expect("the schema compiles")
    }

    fn errors(doc: &Value) -> Vec<String> {
        validator()
            .iter_errors(doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    #[test]
    fn is_valid_json_and_a_valid_2020_12_schema() {
        let text = rule_document_pretty();
        assert!(text.ends_with("}\n"));
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed, rule_document());
        assert_eq!(parsed["$schema"], DRAFT_2020_12);
        jsonschema::meta::validate(&parsed).expect("valid against its meta-schema");
    }

    #[test]
    fn is_stable() {
        assert_eq!(rule_document_pretty(), rule_document_pretty());
    }

    /// A deserializer that answers every question with "yes, and one of them": each struct gets all
    /// of the fields serde knows, each option `Some`, each list one item, each map one entry. Driving
    /// a model type with it yields a value with every field set, whatever the model grows.
    struct Everything;

    struct Fields(&'static [&'static str]);
    struct One(bool);

    impl<'de> de::Deserializer<'de> for Everything {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            // StringMatch is the only `deserialize_any` in the model: give its object form.
            v.visit_map(de::value::MapDeserializer::new(std::iter::once(("prefix", "/api"))))
        }
        fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            v.visit_bool(true)
        }
        fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            v.visit_i64(1)
        }
        fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            v.visit_f64(1.0)
        }
        fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            v.visit_str("1s")
        }
        fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            v.visit_str("1s")
        }
        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            v.visit_some(self)
        }
        fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, Self::Error> {
            v.visit_newtype_struct(self)
        }
        fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            v.visit_seq(One(false))
        }
        fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            v.visit_map(One(false))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Self::Error> {
            v.visit_map(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            i8 i16 i32 i128 u8 u16 u32 u64 u128 f32 char bytes byte_buf unit unit_struct
            tuple tuple_struct enum identifier ignored_any
        }
    }

    impl<'de> de::MapAccess<'de> for Fields {
        type Error = de::value::Error;
        fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(None);
            };
            self.0 = rest;
            seed.deserialize(de::value::StrDeserializer::new(first)).map(Some)
        }
        fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
            seed.deserialize(Everything)
        }
    }

    impl<'de> de::SeqAccess<'de> for One {
        type Error = de::value::Error;
        fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
            if std::mem::replace(&mut self.0, true) {
                return Ok(None);
            }
            seed.deserialize(Everything).map(Some)
        }
    }

    impl<'de> de::MapAccess<'de> for One {
        type Error = de::value::Error;
        fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
            if std::mem::replace(&mut self.0, true) {
                return Ok(None);
            }
            seed.deserialize(de::value::StrDeserializer::new("x-key")).map(Some)
        }
        fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
            seed.deserialize(Everything)
        }
    }

    fn everything<T: DeserializeOwned + Serialize>() -> Value {
        let value = T::deserialize(Everything).expect("the model deserializes from Everything");
        serde_json::to_value(value).expect("the model serializes")
    }

    /// The object keys of `value`, as paths with `[]` for list items and `{}` for map entries.
    fn key_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let path = if k == "x-key" {
                        format!("{prefix}.{{}}")
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.insert(path.clone());
                    key_paths(v, &path, out);
                }
            }
            Value::Array(items) => {
                for v in items {
                    key_paths(v, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }

    /// Follows a key path through the schema (resolving `$ref`, `anyOf`, `oneOf`, maps' values).
    fn schema_has(root: &Value, schema: &Value, path: &[&str]) -> bool {
        let Some((head, rest)) = path.split_first() else {
            return true;
        };
        let schema = resolve(root, schema);
        for alt in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alts)) = schema.get(alt) {
                return alts.iter().any(|s| schema_has(root, s, path));
            }
        }
        if let Some(name) = head.strip_suffix("[]") {
            let Some(prop) = schema.get("properties").and_then(|p| p.get(name)) else {
                return false;
            };
            let prop = resolve(root, prop);
            let items = match prop.get("anyOf") {
                Some(Value::Array(alts)) => alts.iter().find_map(|s| s.get("items")),
                _ => prop.get("items"),
            };
            return items.is_some_and(|items| schema_has(root, items, rest));
        }
        let next = if *head == "{}" {
            schema.get("additionalProperties").filter(|v| v.is_object())
        } else {
            schema.get("properties").and_then(|p| p.get(*head))
        };
        next.is_some_and(|next| schema_has(root, next, rest))
    }

    fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => r
                .strip_prefix('#')
                .and_then(|pointer| root.pointer(pointer))
                .map_or(schema, |s| resolve(root, s)),
            None => schema,
        }
    }

    /// ".a.b[].c" → ["a", "b[]", "c"]: a list's marker stays on the key that holds the list.
    fn split(path: &str) -> Vec<&str> {
        path.trim_start_matches('.').split('.').collect()
    }

    fn spec_schema(root: &Value, kind: Kind) -> &Value {
        root["$defs"]
            .get(kind.name())
            .unwrap_or_else(|| panic!("no $defs entry for {kind}"))
    }

    #[test]
    fn names_every_field_of_the_model() {
        let root = rule_document();
        let cases = [
            (Kind::RouteRule, everything::<RouteRule>()),
            (Kind::EgressRule, everything::<EgressRule>()),
            (Kind::DestinationPolicy, everything::<DestinationPolicy>()),
        ];
        let mut seen = BTreeSet::new();
        for (kind, spec) in &cases {
            let mut paths = BTreeSet::new();
            key_paths(spec, "", &mut paths);
            assert!(paths.len() > 5, "{kind}: {paths:?}");
            for path in &paths {
                let segments = split(path);
                assert!(
                    schema_has(&root, spec_schema(&root, *kind), &segments),
                    "the schema of {kind}.spec lacks {path}"
                );
                seen.insert(format!("{kind}.spec{path}"));
            }
        }
        // The walk can fail: a path the schema does not have is reported.
        let route = spec_schema(&root, Kind::RouteRule);
        assert!(!schema_has(
            &root,
            route,
            &["httpReqTimeout", "simpleTimeout", "timeoutt"]
        ));
        assert!(!schema_has(&root, route, &["route[]", "weigth"]));
        assert!(!schema_has(&root, route, &["corsPolicy", "maxAge", "x"]));
        let mut meta_paths = BTreeSet::new();
        key_paths(&everything::<Metadata>(), "", &mut meta_paths);
        for path in &meta_paths {
            assert!(
                schema_has(&root, &root["properties"]["metadata"], &split(path)),
                "the metadata schema lacks {path}"
            );
        }
        for must in [
            "RouteRule.spec.httpReqTimeout.simpleTimeout.timeout",
            "RouteRule.spec.corsPolicy.maxAge",
            "RouteRule.spec.match.request.headers.{}",
            "RouteRule.spec.route[].weight",
            "RouteRule.spec.httpFault.abort.httpStatus",
            "RouteRule.spec.l4Fault.throttle.throttleAfterPeriod",
            "EgressRule.spec.useEgressProxy",
            "EgressRule.spec.ports[].protocol",
            "DestinationPolicy.spec.circuitBreaker.simpleCb.httpMaxEjectionPercent",
            "DestinationPolicy.spec.loadBalancing.name",
        ] {
            assert!(seen.contains(must), "{must} not walked; walked: {seen:#?}");
        }
        for field in ["name", "namespace", "labels", "annotations", "resourceVersion"] {
            assert!(meta_paths.contains(&format!(".{field}")), "{field}");
        }
    }

    fn doc(kind: &str, spec: Value) -> Value {
        json!({
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": { "name": "reviews-default", "namespace": "default", "labels": { "team": "a" } },
            "spec": spec
        })
    }

    fn route_rule() -> Value {
        doc(
            "RouteRule",
            json!({
                "destination": { "name": "reviews" },
                "precedence": 2,
                "match": {
                    "source": { "name": "productpage", "labels": { "version": "v1" } },
                    "request": { "headers": {
                        "cookie": { "regex": "^(.*?;)?(user=jason)(;.*)?$" },
                        "uri": { "prefix": "/api" },
                        "x-env": "canary"
                    } }
                },
                "route": [ { "labels": { "version": "v1" }, "weight": 75 }, { "labels": { "version": "v3" }, "weight": 25 } ],
                "httpReqTimeout": { "simpleTimeout": { "timeout": "1.5s" } },
                "httpReqRetries": { "simpleRetry": { "attempts": 3, "perTryTimeout": "500ms" } },
                "httpFault": { "delay": { "percent": 10, "fixedDelay": "5s" }, "abort": { "percent": 0.5, "httpStatus": 503 } },
                "corsPolicy": { "allowOrigin": ["*"], "maxAge": "1d", "allowCredentials": false },
                "appendHeaders": { "x-mesh": "on" }
            }),
        )
    }

    fn egress_rule() -> Value {
        doc(
            "EgressRule",
            json!({
                "destination": { "service": "*.cnn.com" },
                "ports": [ { "port": 80, "protocol": "http" }, { "port": 443, "protocol": "HTTPS" } ],
                "useEgressProxy": false
            }),
        )
    }

    fn destination_policy() -> Value {
        doc(
            "DestinationPolicy",
            json!({
                "destination": { "name": "reviews", "labels": { "version": "v1" } },
                "loadBalancing": { "name": "LEAST_CONN" },
                "circuitBreaker": { "simpleCb": {
                    "maxConnections": 100, "httpMaxPendingRequests": 10, "sleepWindow": "15m",
                    "httpDetectionInterval": "5m", "httpMaxEjectionPercent": 100
                } }
            }),
        )
    }

    #[test]
    fn accepts_a_document_of_each_kind() {
        for d in [route_rule(), egress_rule(), destination_policy()] {
            assert_eq!(errors(&d), Vec::<String>::new(), "{d:#}");
        }
    }

    /// Sets (or adds) the value at a JSON pointer whose parent exists.
    fn set(doc: &mut Value, pointer: &str, value: Value) {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
        match doc.pointer_mut(parent) {
            Some(Value::Object(map)) => {
                map.insert(key.to_string(), value);
            }
            Some(Value::Array(items)) => items[key.parse::<usize>().expect("an index")] = value,
            _ => panic!("{parent} is not in the document"),
        }
    }

    #[test]
    fn rejects_unknown_fields_at_every_level() {
        let cases: Vec<(Value, &str)> = vec![
            (route_rule(), "/status"),
            (route_rule(), "/metadata/lables"),
            (route_rule(), "/spec/httpReqTimeOut"),
            (route_rule(), "/spec/route/0/wieght"),
            (route_rule(), "/spec/match/request/headers/cookie/suffix"),
            (egress_rule(), "/spec/ports/0/name"),
            (destination_policy(), "/spec/circuitBreaker/simpleCb/maxConnection"),
        ];
        for (mut d, pointer) in cases {
            set(&mut d, pointer, json!("x"));
            assert!(!errors(&d).is_empty(), "{pointer} was accepted");
        }
    }

    #[test]
    fn checks_the_spec_against_its_own_kind() {
        let mut d = egress_rule();
        d["kind"] = json!("RouteRule");
        assert!(
            !errors(&d).is_empty(),
            "an EgressRule spec under kind RouteRule was accepted"
        );
        let mut d = route_rule();
        d["kind"] = json!("EgresRule");
        assert!(!errors(&d).is_empty());
        let mut d = route_rule();
        d["apiVersion"] = json!("config.istio.io/v1alpha3");
        assert!(!errors(&d).is_empty());
    }

    #[test]
    fn checks_value_shapes() {
        let bad: Vec<(Value, &str, Value)> = vec![
            (route_rule(), "/spec/route/0/weight", json!("75")),
            (route_rule(), "/spec/route/0/weight", json!(7.5)),
            (route_rule(), "/spec/httpReqTimeout/simpleTimeout/timeout", json!(10)),
            (route_rule(), "/spec/httpReqTimeout/simpleTimeout/timeout", json!("10")),
            (
                route_rule(),
                "/spec/httpReqTimeout/simpleTimeout/timeout",
                json!("10 s"),
            ),
            (
                route_rule(),
                "/spec/httpReqTimeout/simpleTimeout/timeout",
                json!("1..5s"),
            ),
            (
                route_rule(),
                "/spec/match/request/headers/uri",
                json!({ "exact": "/a", "prefix": "/b" }),
            ),
            (route_rule(), "/spec/match/request/headers/uri", json!({})),
            (route_rule(), "/spec/match/request/headers/uri", json!(3)),
            (route_rule(), "/metadata/labels/team", json!(1)),
            (route_rule(), "/spec/websocketUpgrade", json!("yes")),
            (egress_rule(), "/spec/ports/0/protocol", json!("ftp")),
            (destination_policy(), "/spec/loadBalancing/name", json!("round_robin")),
        ];
        for (mut d, pointer, value) in bad {
            set(&mut d, pointer, value.clone());
            assert!(!errors(&d).is_empty(), "{pointer} = {value} was accepted");
        }
        let mut d = route_rule();
        d["metadata"].as_object_mut().map(|m| m.remove("name"));
        assert!(!errors(&d).is_empty(), "a rule without a name was accepted");
    }

    #[test]
    fn duration_pattern_agrees_with_the_parser() {
        let re = regex::Regex::new(DURATION_PATTERN).expect("the pattern compiles");
        for text in [
            "1s",
            "1.5s",
            ".5s",
            "5.s",
            "500ms",
            "250us",
            "250µs",
            "10ns",
            "1m",
            "1h30m",
            "1d",
            " 2s ",
            "0s",
            "1h1m1s1ms",
            "10",
            "",
            " ",
            "1",
            "s",
            ".s",
            "1..5s",
            "1.5.5s",
            "-1s",
            "1 s",
            "1sec",
            "1hm",
            "1.5",
            "1m s",
            "ms1",
        ] {
            assert_eq!(
                re.is_match(text),
                super::super::duration::parse_duration(text).is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn case_insensitive_choice_matches_any_case() {
        let re = regex::Regex::new(&case_insensitive_choice(Protocol::NAMES)).expect("compiles");
        for ok in ["http", "HTTP", "Https", "gRPC", "http2", "TCP", "mongo"] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in ["ftp", "http3", "https ", ""] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }
}
