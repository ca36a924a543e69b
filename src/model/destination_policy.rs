//! DestinationPolicy: load balancing and circuit breaking toward a service (version).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::IstioService;
use super::duration::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<IstioService>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<IstioService>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancing: Option<LoadBalancing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancing {
    /// ROUND_ROBIN, LEAST_CONN or RANDOM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The simple load-balancing policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    LeastConn,
    Random,
    RoundRobin,
}

impl LbPolicy {
    pub const NAMES: &'static [&'static str] = &["ROUND_ROBIN", "LEAST_CONN", "RANDOM"];

    pub fn parse(s: &str) -> Option<LbPolicy> {
        Some(match s {
            "LEAST_CONN" => LbPolicy::LeastConn,
            "RANDOM" => LbPolicy::Random,
            "ROUND_ROBIN" => LbPolicy::RoundRobin,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreaker {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simple_cb: Option<SimpleCircuitBreaker>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimpleCircuitBreaker {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_max_pending_requests: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_max_requests: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sleep_window: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_consecutive_errors: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_detection_interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_max_requests_per_connection: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_max_ejection_percent: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_max_retries: Option<i64>,
}
