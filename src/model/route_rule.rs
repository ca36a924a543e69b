//! RouteRule: how HTTP (and TCP) traffic to a service is routed between its versions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{IstioService, StringMap, StringMatch};
use super::duration::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<IstioService>,
    /// Higher applies first; 0 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precedence: Option<i64>,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MatchCondition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Vec<DestinationWeight>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<HttpRedirect>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket_upgrade: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_req_timeout: Option<HttpTimeout>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_req_retries: Option<HttpRetry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_fault: Option<HttpFaultInjection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4_fault: Option<L4FaultInjection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<IstioService>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_headers: Option<StringMap>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchCondition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<IstioService>,
    /// Deprecated (Istio 0.1's form): use `source.labels`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<StringMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<L4MatchAttributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<L4MatchAttributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<MatchRequest>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchRequest {
    /// Header name (lowercase; `uri`, `authority`, `scheme`, `method` are pseudo-headers) to match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<std::collections::BTreeMap<String, StringMatch>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L4MatchAttributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_subnet: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_subnet: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationWeight {
    /// Another service to send to; defaults to the rule's destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<IstioService>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<StringMap>,
    /// 0–100; 100 when the route has one entry and gives none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRedirect {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRewrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTimeout {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simple_timeout: Option<SimpleTimeout>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimpleTimeout {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_header_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simple_retry: Option<SimpleRetry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimpleRetry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_header_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFaultInjection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delay {
    /// 0–100; 100 when absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::model::common::whole_as_integer"
    )]
    pub percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<Duration>,
    /// Mean of an exponential distribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exponential_delay: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_header_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Abort {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::model::common::whole_as_integer"
    )]
    pub percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_header_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L4FaultInjection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminate: Option<Terminate>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Throttle {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::model::common::whole_as_integer"
    )]
    pub percent: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::model::common::whole_as_integer"
    )]
    pub downstream_limit_bps: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::model::common::whole_as_integer"
    )]
    pub upstream_limit_bps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_after_period: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::model::common::whole_as_integer"
    )]
    pub throttle_after_bytes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_for_period: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Terminate {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::model::common::whole_as_integer"
    )]
    pub percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminate_after_period: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_origin: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_headers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}
