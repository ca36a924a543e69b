//! The EgressRules the store benchmarks write (`fill_store`, `load`): deterministic, valid, varied
//! like real ones (host names, wildcards, IPs and CIDRs; one or two ports), spread over ten namespaces.

use meshctl::model::{Kind, Resource};

const VENDORS: &[&str] = &[
    "stripe",
    "twilio",
    "sendgrid",
    "github",
    "datadog",
    "okta",
    "slack",
    "pagerduty",
];
const NAMESPACES: usize = 10;

/// The namespace of rule `i`.
pub fn namespace(i: usize) -> String {
    format!("team-{}", i % NAMESPACES)
}

/// The name of rule `i` (unique across namespaces too).
pub fn name(i: usize) -> String {
    format!("egress-{i:06}")
}

/// Rule `i` as the JSON body `meshctl serve` takes (POST) and `Resource::from_json` reads.
pub fn json(i: usize) -> String {
    let vendor = VENDORS[i % VENDORS.len()];
    let (service, tcp) = match i % 5 {
        0 => (format!("*.{vendor}.com"), false),
        1 | 2 => (format!("api{}.{vendor}.io", i % 97), false),
        3 => (
            format!("10.{}.{}.{}", (i / 65536) % 256, (i / 256) % 256, i % 254 + 1),
            true,
        ),
        _ => (format!("192.168.{}.0/24", i % 256), true),
    };
    let ports = match (tcp, i % 3) {
        (true, 0) => r#"[{"port":3306,"protocol":"tcp"},{"port":5432,"protocol":"tcp"}]"#,
        (true, _) => r#"[{"port":6379,"protocol":"tcp"}]"#,
        (false, 0) => r#"[{"port":443,"protocol":"https"},{"port":80,"protocol":"http"}]"#,
        (false, _) => r#"[{"port":443,"protocol":"https"}]"#,
    };
    format!(
        r#"{{"apiVersion":"config.istio.io/v1alpha2","kind":"EgressRule","metadata":{{"name":"{}","namespace":"{}"}},"spec":{{"destination":{{"service":"{service}"}},"ports":{ports}}}}}"#,
        name(i),
        namespace(i)
    )
}

/// Rule `i` as a typed object.
pub fn resource(i: usize) -> anyhow::Result<Resource> {
    Ok(Resource::from_json(Kind::EgressRule, &json(i))?)
}
