//! EgressRule: an external destination that the mesh may reach.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::IstioService;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    /// Only `service` counts: a host name, `*.domain`, an IP or a CIDR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<IstioService>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<EgressPort>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_egress_proxy: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressPort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// http, https, grpc, http2, tcp or mongo, in any case; kept as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// The protocols an egress port may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Grpc,
    Http,
    Http2,
    Https,
    Mongo,
    Tcp,
}

impl Protocol {
    pub const NAMES: &'static [&'static str] = &["http", "https", "grpc", "http2", "tcp", "mongo"];

    /// Case-insensitive, as Istio read it.
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s.to_ascii_lowercase().as_str() {
            "grpc" => Protocol::Grpc,
            "http" => Protocol::Http,
            "http2" => Protocol::Http2,
            "https" => Protocol::Https,
            "mongo" => Protocol::Mongo,
            "tcp" => Protocol::Tcp,
            _ => return None,
        })
    }

    /// TCP-level protocols are matched by IP and port; the others by host name.
    pub fn is_tcp_level(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Mongo)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
            Protocol::Http2 => "http2",
            Protocol::Https => "https",
            Protocol::Mongo => "mongo",
            Protocol::Tcp => "tcp",
        }
    }
}
