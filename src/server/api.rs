//! Request handling: routing, authentication, body parsing, store calls, responses (docs/api.md).
//!
//! Nothing a client sends can panic the server: every parse is checked and every failure becomes a
//! `Status` response.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::{Body as _, Incoming};
use serde_json::{Value, json};

use super::App;
use super::auth::{Principal, Verb};
use super::status::ApiError;
use super::watch;
use crate::diag::Severity;
use crate::load::LoadOptions;
use crate::model::{API_VERSION, Kind, Resource};
use crate::store::{ObjectKey, Selector, StoreError};

/// Where the API lives.
pub const PREFIX: &str = "/apis/config.istio.io/v1alpha2/";
/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// A larger body is still read (and thrown away) up to this size, so the client gets its 413 instead
/// of a connection reset while it is still sending; beyond it the connection is closed.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// What a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `/{plural}` (namespace None) or `/namespaces/{ns}/{plural}`.
    Collection { kind: Kind, namespace: Option<String> },
    /// `/namespaces/{ns}/{plural}/{name}`.
    Object { key: ObjectKey },
}

/// The result of one request, with what the log line and the metrics need.
struct Handled {
    response: Response<Body>,
    verb: &'static str,
    user: Option<String>,
}

/// Handles one request; logs it and counts it.
pub async fn handle(app: Arc<App>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let watching = query_flag(req.uri().query(), "watch");
    let handled = route(&app, req).await;
    let elapsed = start.elapsed();
    let status = handled.response.status();
    app.metrics.record(handled.verb, status.as_u16(), elapsed);
    // One line per request. Never the query (it is not ours to trust) nor any header.
    eprintln!(
        "meshctl serve: {} {peer} {} {}{} {} {:.1}ms user={}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        super::log_safe(method.as_str()),
        super::log_safe(&path),
        if watching { " (watch)" } else { "" },
        status.as_u16(),
        elapsed.as_secs_f64() * 1000.0,
        handled.user.as_deref().unwrap_or("-"),
    );
    handled.response
}

/// The verb label for metrics, from the method alone (refined once the path is known).
fn method_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::DELETE => "delete",
        Method::PATCH => "patch",
        _ => "other",
    }
}

async fn route(app: &Arc<App>, req: Request<Incoming>) -> Handled {
    let mut verb = method_verb(req.method());
    let path = req.uri().path();
    match path {
        "/healthz" | "/readyz" | "/metrics" => {
            let response = if req.method() == Method::GET || req.method() == Method::HEAD {
                match path {
                    "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".to_string()),
                    "/readyz" => readyz(app).await,
                    _ => metrics(app).await,
                }
            } else {
                with_allow(
                    error(ApiError::method_not_allowed(format!("{path} takes GET only"))),
                    "GET, HEAD",
                )
            };
            return Handled {
                response,
                verb,
                user: None,
            };
        }
        _ => {}
    }

    // Who is asking, before anything else is revealed.
    let principal = match authenticate(app, req.headers()) {
        Ok(p) => p,
        Err(e) => {
            let mut response = error(e);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Handled {
                response,
                verb,
                user: None,
            };
        }
    };
    let user = principal.as_ref().map(|p| p.name.clone());
    let done = |response, verb| Handled {
        response,
        verb,
        user: user.clone(),
    };

    let Some(target) = parse_path(path) else {
        return done(
            error(ApiError::not_found(format!(
                "the server could not find the requested resource: {}",
                super::log_safe(path)
            ))),
            verb,
        );
    };
    let method = req.method().clone();
    let (needs, allowed): (Verb, &'static str) = match (&target, &method) {
        (Target::Collection { .. }, &Method::GET) => {
            verb = if query_flag(req.uri().query(), "watch") {
                "watch"
            } else {
                "list"
            };
            (Verb::Read, "")
        }
        (Target::Collection { namespace: Some(_), .. }, &Method::POST) => (Verb::Write, ""),
        (Target::Object { .. }, &Method::GET) => (Verb::Read, ""),
        (Target::Object { .. }, &Method::PUT | &Method::DELETE) => (Verb::Write, ""),
        (Target::Collection { namespace: Some(_), .. }, _) => (Verb::Read, "GET, POST"),
        (Target::Collection { namespace: None, .. }, _) => (Verb::Read, "GET"),
        (Target::Object { .. }, _) => (Verb::Read, "GET, PUT, DELETE"),
    };
    if !allowed.is_empty() {
        return done(
            with_allow(
                error(ApiError::method_not_allowed(format!(
                    "{} is not allowed on {}: use {allowed}",
                    super::log_safe(method.as_str()),
                    super::log_safe(path)
                ))),
                allowed,
            ),
            verb,
        );
    }
    if let Some(p) = &principal {
        let namespace = match &target {
            Target::Collection { namespace, .. } => namespace.as_deref(),
            Target::Object { key } => Some(key.namespace.as_str()),
        };
        if !p.allows(needs, namespace) {
            let kind = match &target {
                Target::Collection { kind, .. } => *kind,
                Target::Object { key } => key.kind,
            };
            let scope = match namespace {
                Some(ns) => format!("in namespace \"{}\"", super::log_safe(ns)),
                None => "in every namespace (a cluster-wide list needs a token for \"*\")".to_string(),
            };
            return done(
                error(
                    ApiError::forbidden(format!(
                        "token \"{}\" may not {} {} {scope}",
                        p.name,
                        needs.as_str(),
                        kind.plural()
                    ))
                    .with_kind(kind),
                ),
                verb,
            );
        }
    }

    let query = req.uri().query().map(str::to_string);
    let response = match (target, method) {
        (Target::Collection { kind, namespace }, Method::GET) => {
            if verb == "watch" {
                start_watch(app, kind, namespace, query.as_deref()).await
            } else {
                list(app, kind, namespace).await
            }
        }
        (
            Target::Collection {
                kind,
                namespace: Some(ns),
            },
            Method::POST,
        ) => write(app, req, Write::Create, ObjectKey::new(kind, ns, "")).await,
        (Target::Object { key }, Method::GET) => {
            let store = app.store.clone();
            match blocking(move || store.get(&key)).await {
                Ok(object) => object_response(StatusCode::OK, &object),
                Err(e) => error(e),
            }
        }
        (Target::Object { key }, Method::PUT) => write(app, req, Write::Update, key).await,
        (Target::Object { key }, Method::DELETE) => {
            let store = app.store.clone();
            match blocking(move || store.delete(&key)).await {
                Ok(object) => object_response(StatusCode::OK, &object),
                Err(e) => error(e),
            }
        }
        // Every other combination was answered above.
        _ => error(ApiError::method_not_allowed("method not allowed")),
    };
    done(response, verb)
}

/// The principal of the request's bearer token; Ok(None) when authentication is off.
fn authenticate(app: &App, headers: &HeaderMap) -> Result<Option<Arc<Principal>>, ApiError> {
    let Some(tokens) = app.tokens() else {
        return Ok(None);
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "no bearer token: send `Authorization: Bearer TOKEN` (see `meshctl token create`)",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header is not `Bearer TOKEN`"))?;
    tokens
        .authenticate(token)
        .map(Some)
        .ok_or_else(|| ApiError::unauthorized("the bearer token is not valid"))
}

/// `/apis/config.istio.io/v1alpha2/...` → what it names; None for any other path.
fn parse_path(path: &str) -> Option<Target> {
    let rest = path.strip_prefix(PREFIX)?;
    let segments: Vec<&str> = rest.split('/').collect();
    let kind = |plural: &str| Kind::ALL.into_iter().find(|k| k.plural() == plural);
    match segments.as_slice() {
        [plural] => Some(Target::Collection {
            kind: kind(plural)?,
            namespace: None,
        }),
        ["namespaces", ns, plural] if !ns.is_empty() => Some(Target::Collection {
            kind: kind(plural)?,
            namespace: Some(ns.to_string()),
        }),
        ["namespaces", ns, plural, name] if !ns.is_empty() && !name.is_empty() => Some(Target::Object {
            key: ObjectKey::new(kind(plural)?, *ns, *name),
        }),
        _ => None,
    }
}

/// The value of a query parameter (first occurrence), undecoded: ours are numbers and booleans.
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

fn query_flag(query: Option<&str>, name: &str) -> bool {
    matches!(query_param(query, name), Some("true" | "1" | ""))
}

/// Runs a blocking store call on the blocking pool. A panic in the store is an internal error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::from_store(e)),
        Err(_) => Err(ApiError::internal("internal error while calling the store")),
    }
}

async fn readyz(app: &App) -> Response<Body> {
    if app.shutting_down.load(Ordering::SeqCst) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "shutting down\n".into(),
        );
    }
    let store = app.store.clone();
    let answer = tokio::time::timeout(Duration::from_secs(5), blocking(move || store.revision())).await;
    match answer {
        Ok(Ok(_)) => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        _ => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "the store is not answering\n".into(),
        ),
    }
}

async fn metrics(app: &App) -> Response<Body> {
    let store = app.store.clone();
    let revision = tokio::time::timeout(Duration::from_secs(5), blocking(move || store.revision()))
        .await
        .ok()
        .and_then(Result::ok);
    text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        app.metrics.render(revision),
    )
}

async fn list(app: &App, kind: Kind, namespace: Option<String>) -> Response<Body> {
    let store = app.store.clone();
    let selector = Selector {
        kind: Some(kind),
        namespace,
    };
    match blocking(move || store.list(&selector)).await {
        Ok(listing) => {
            let list = json!({
                "apiVersion": API_VERSION,
                "kind": format!("{}List", kind.name()),
                "metadata": { "resourceVersion": listing.revision.to_string() },
                "items": listing.items,
            });
            json_response(StatusCode::OK, &list)
        }
        Err(e) => error(e.with_kind(kind)),
    }
}

async fn start_watch(app: &Arc<App>, kind: Kind, namespace: Option<String>, query: Option<&str>) -> Response<Body> {
    let after = match query_param(query, "resourceVersion") {
        None | Some("") => 0,
        Some(v) => match v.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return error(ApiError::bad_request(format!(
                    "resourceVersion `{}` is not a revision (a decimal number)",
                    super::log_safe(v)
                )));
            }
        },
    };
    if app.metrics.watches_open() >= watch::MAX_WATCHES {
        return error(ApiError::unavailable("too many watches are open; try again later"));
    }
    let store = app.store.clone();
    let selector = Selector {
        kind: Some(kind),
        namespace,
    };
    let w = match blocking(move || store.watch(&selector, after)).await {
        Ok(w) => w,
        Err(e) => return error(e.with_kind(kind)),
    };
    match watch::start(app.clone(), w, after) {
        Ok(body) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::new(body))
            .unwrap_or_else(|_| error(ApiError::internal("cannot build the response"))),
        Err(e) => {
            eprintln!("meshctl serve: cannot start a watch thread: {e}");
            error(ApiError::unavailable("cannot start a watch now; try again later"))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Create,
    Update,
}

/// POST (create) and PUT (update). `key.name` is empty for a create.
async fn write(app: &App, req: Request<Incoming>, op: Write, key: ObjectKey) -> Response<Body> {
    let bytes = match read_body(req).await {
        Ok(b) => b,
        Err(e) => return error(e.with_kind(key.kind)),
    };
    let store = app.store.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<(StatusCode, Resource), ApiError> {
        let object = parse_body(&bytes, &key, op)?;
        match op {
            Write::Create => store
                .create(&object)
                .map(|o| (StatusCode::CREATED, o))
                .map_err(ApiError::from_store),
            Write::Update => store
                .update(&object)
                .map(|o| (StatusCode::OK, o))
                .map_err(ApiError::from_store),
        }
    })
    .await;
    match result {
        Ok(Ok((code, object))) => object_response(code, &object),
        Ok(Err(e)) => error(e),
        Err(_) => error(ApiError::internal("internal error while handling the request")),
    }
}

/// Reads the request body: at most `MAX_BODY` bytes, within `BODY_TIMEOUT`.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(ApiError::too_large(MAX_BODY));
    }
    let mut body = req.into_body();
    let read = async {
        let mut buf: Vec<u8> = Vec::with_capacity(declared.map_or(8192, |n| n.min(MAX_BODY as u64) as usize));
        let mut total: u64 = 0;
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            match frame {
                None => break,
                Some(Err(_)) => return Err(ApiError::bad_request("the request body could not be read")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        total = total.saturating_add(data.len() as u64);
                        if total > DRAIN_LIMIT {
                            return Err(ApiError::too_large(MAX_BODY));
                        }
                        if total <= MAX_BODY as u64 {
                            buf.extend_from_slice(&data);
                        }
                    }
                }
            }
        }
        if total > MAX_BODY as u64 {
            return Err(ApiError::too_large(MAX_BODY));
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(super::BODY_TIMEOUT, read).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::timeout(format!(
            "the request body did not arrive within {}",
            humantime::format_duration(super::BODY_TIMEOUT)
        ))),
    }
}

/// Turns a request body into the one object it must hold, with the same loader and checks as
/// `meshctl validate`. `key` comes from the path (its name is empty for a create).
fn parse_body(bytes: &[u8], key: &ObjectKey, op: Write) -> Result<Resource, ApiError> {
    let kind = key.kind;
    let bad = |m: String| ApiError::bad_request(m).with_kind(kind);
    // Structure first, so a body of the wrong kind is a 400 rather than that kind's validation errors.
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("the request body is not valid JSON: {e}")))?;
    let Value::Object(obj) = &value else {
        return Err(bad(format!("the request body must be one {kind} object, as JSON")));
    };
    match obj.get("kind") {
        Some(Value::String(k)) if k == kind.name() => {}
        Some(Value::String(k)) if k == "List" || k.ends_with("List") => {
            return Err(bad(format!("the request body is a {k}; send one {kind} per request")));
        }
        Some(Value::String(k)) => {
            return Err(bad(format!(
                "the body's kind `{k}` does not match the path, which is for {kind} ({})",
                kind.plural()
            )));
        }
        Some(_) => return Err(bad("the body's kind must be a string".to_string())),
        None => return Err(bad(format!("the body has no kind: expected `\"kind\": \"{kind}\"`"))),
    }
    match obj.get("apiVersion") {
        Some(Value::String(a)) if a == API_VERSION => {}
        Some(Value::String(a)) => {
            return Err(bad(format!(
                "the body's apiVersion `{a}` does not match the path, which is for {API_VERSION}"
            )));
        }
        Some(_) => return Err(bad("the body's apiVersion must be a string".to_string())),
        None => {
            return Err(bad(format!(
                "the body has no apiVersion: expected `\"apiVersion\": \"{API_VERSION}\"`"
            )));
        }
    }
    let meta = obj.get("metadata").and_then(Value::as_object);
    let body_name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    match meta.and_then(|m| m.get("namespace")) {
        Some(Value::String(ns)) if *ns != key.namespace => {
            return Err(bad(format!(
                "the body's metadata.namespace `{ns}` does not match the namespace in the path, `{}`",
                key.namespace
            )));
        }
        _ => {}
    }
    if op == Write::Update {
        if let Some(name) = body_name.filter(|n| *n != key.name) {
            return Err(bad(format!(
                "the body's metadata.name `{name}` does not match the name in the path, `{}`",
                key.name
            )));
        }
    }

    let opts = LoadOptions {
        keep_resources: true,
        ..LoadOptions::default()
    };
    let report = crate::validate::check_file(&Arc::from("request body"), bytes, &opts);
    let errors: Vec<_> = report
        .diagnostics
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        let name = match op {
            Write::Update => key.name.clone(),
            Write::Create => body_name.unwrap_or_default().to_string(),
        };
        return Err(ApiError::from_store(StoreError::Invalid {
            key: ObjectKey::new(kind, key.namespace.clone(), name),
            diagnostics: errors,
        }));
    }
    let mut resources = report.resources;
    if resources.len() != 1 {
        return Err(bad(format!("the request body must hold exactly one {kind}")));
    }
    let mut object = resources.remove(0);
    if object.kind != kind {
        return Err(bad(format!("the body is not a {kind}")));
    }
    let m = &mut object.metadata;
    if m.namespace.is_none() {
        m.namespace = Some(key.namespace.clone());
    }
    if op == Write::Update && m.name.is_none() {
        m.name = Some(key.name.clone());
    }
    Ok(object)
}

fn object_response(code: StatusCode, object: &Resource) -> Response<Body> {
    match serde_json::to_value(object) {
        Ok(v) => json_response(code, &v),
        Err(_) => error(ApiError::internal("cannot encode the object")),
    }
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    text_response(code, "application/json", text)
}

fn text(code: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    text_response(code, content_type, body)
}

fn text_response(code: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn error(e: ApiError) -> Response<Body> {
    json_response(e.code, &e.to_json())
}

fn with_allow(mut response: Response<Body>, allow: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collections_and_objects() {
        assert_eq!(
            parse_path("/apis/config.istio.io/v1alpha2/egressrules"),
            Some(Target::Collection {
                kind: Kind::EgressRule,
                namespace: None
            })
        );
        assert_eq!(
            parse_path("/apis/config.istio.io/v1alpha2/namespaces/a/routerules"),
            Some(Target::Collection {
                kind: Kind::RouteRule,
                namespace: Some("a".into())
            })
        );
        assert_eq!(
            parse_path("/apis/config.istio.io/v1alpha2/namespaces/a/destinationpolicies/x"),
            Some(Target::Object {
                key: ObjectKey::new(Kind::DestinationPolicy, "a", "x")
            })
        );
        for bad in [
            "/apis/config.istio.io/v1alpha2/",
            "/apis/config.istio.io/v1alpha2/egressrule",
            "/apis/config.istio.io/v1alpha2/namespaces//egressrules",
            "/apis/config.istio.io/v1alpha2/namespaces/a/egressrules/",
            "/apis/config.istio.io/v1alpha2/namespaces/a/egressrules/x/y",
            "/api/v1/namespaces",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_flags_and_params() {
        assert!(query_flag(Some("watch=true&resourceVersion=3"), "watch"));
        assert!(query_flag(Some("watch=1"), "watch"));
        assert!(query_flag(Some("watch"), "watch"));
        assert!(!query_flag(Some("watch=false"), "watch"));
        assert!(!query_flag(None, "watch"));
        assert_eq!(
            query_param(Some("watch=true&resourceVersion=3"), "resourceVersion"),
            Some("3")
        );
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(Kind::EgressRule, "default", name)
    }

    const MYSQL: &str = r#"{"apiVersion":"config.istio.io/v1alpha2","kind":"EgressRule","metadata":{"name":"mysql"},"spec":{"destination":{"service":"10.0.0.5/32"},"ports":[{"port":3306,"protocol":"tcp"}]}}"#;

    #[test]
    fn bodies_are_checked_against_the_path() {
        let object = parse_body(MYSQL.as_bytes(), &key(""), Write::Create).unwrap();
        assert_eq!(object.namespace(), "default");
        assert_eq!(object.metadata.namespace.as_deref(), Some("default"));

        let e = parse_body(b"{not json", &key(""), Write::Create).unwrap_err();
        assert_eq!((e.code, e.reason), (StatusCode::BAD_REQUEST, "BadRequest"));

        let other_ns = MYSQL.replace(r#""name":"mysql""#, r#""name":"mysql","namespace":"b""#);
        let e = parse_body(other_ns.as_bytes(), &key(""), Write::Create).unwrap_err();
        assert_eq!(e.code, StatusCode::BAD_REQUEST);

        let e = parse_body(MYSQL.as_bytes(), &key("other"), Write::Update).unwrap_err();
        assert_eq!(e.code, StatusCode::BAD_REQUEST);

        let route = MYSQL.replace("EgressRule", "RouteRule");
        let e = parse_body(route.as_bytes(), &key(""), Write::Create).unwrap_err();
        assert_eq!(e.code, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("does not match the path"), "{}", e.message);
    }

    #[test]
    fn invalid_bodies_list_their_causes() {
        let bad = MYSQL.replace("3306", "0");
        let e = parse_body(bad.as_bytes(), &key(""), Write::Create).unwrap_err();
        assert_eq!((e.code, e.reason), (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"));
        let status = e.to_json();
        let cause = &status["details"]["causes"][0];
        assert_eq!(cause["field"], "spec.ports[0].port");
        assert_eq!(cause["reason"], "FieldValueInvalid");
        assert_eq!(cause["code"], "E0304");
        assert_eq!(status["details"]["name"], "mysql");
        assert_eq!(status["details"]["kind"], "egressrules");
    }
}
