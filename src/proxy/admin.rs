//! The admin port: `/metrics` (Prometheus text), `/config_dump` (the rules in force, with their
//! revision), `/ready` (200 once the rules are loaded and the listeners bound).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::conn::FIRST_BYTES_TIMEOUT;
use super::state::Shared;
use crate::model::Kind;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&req, &shared)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(FIRST_BYTES_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            shared
                .metrics
                .access_log_dropped
                .store(shared.log.dropped(), Ordering::Relaxed);
            let mut body = shared.metrics.render();
            {
                use std::fmt::Write as _;
                let active = shared.rules();
                for (name, help, n) in [
                    (
                        "meshctl_proxy_route_rules",
                        "RouteRules in force.",
                        active.count(Kind::RouteRule),
                    ),
                    (
                        "meshctl_proxy_destination_policies",
                        "DestinationPolicies in force.",
                        active.count(Kind::DestinationPolicy),
                    ),
                    (
                        "meshctl_proxy_services",
                        "Services in the registry.",
                        active.registry.len(),
                    ),
                ] {
                    let _ = writeln!(body, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {n}");
                }
            }
            shared.routing.states.render(&mut body);
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/ready" => {
            if shared.ready.load(Ordering::Relaxed) && !*shared.stop.borrow() {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into())
            }
        }
        "/config_dump" => {
            let active = shared.rules();
            let pick = |kind: Kind| -> Vec<&crate::model::Resource> {
                active.objects.iter().filter(|o| o.kind == kind).collect()
            };
            let body = serde_json::json!({
                "revision": active.revision,
                "source": active.source,
                "loadedAt": humantime::format_rfc3339_seconds(active.loaded_at).to_string(),
                "egressRules": pick(Kind::EgressRule),
                "routeRules": pick(Kind::RouteRule),
                "destinationPolicies": pick(Kind::DestinationPolicy),
                "services": &*active.registry,
                "routes": active.routes.dump(),
            });
            let mut r = text(StatusCode::OK, format!("{body:#}\n"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        "/" => text(
            StatusCode::OK,
            "meshctl proxy admin: /metrics /config_dump /ready\n".into(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /config_dump or /ready\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
