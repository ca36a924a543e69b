//! SOCKS5 (RFC 1928) on the explicit proxy port: no authentication, CONNECT only. A destination
//! given by name is matched by host rules, one given by address by TCP rules; the tunnel then
//! carries bytes untouched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::access_log::Entry;
use super::conn::{self, FIRST_BYTES_TIMEOUT, UpstreamError};
use super::state::Shared;

pub const VERSION: u8 = 5;

/// Reply codes.
const SUCCEEDED: u8 = 0;
const GENERAL_FAILURE: u8 = 1;
const NOT_ALLOWED: u8 = 2;
const HOST_UNREACHABLE: u8 = 4;
const CONNECTION_REFUSED: u8 = 5;
const TTL_EXPIRED: u8 = 6;
const COMMAND_NOT_SUPPORTED: u8 = 7;
const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 8;

enum Target {
    Ip(IpAddr),
    Name(String),
}

pub async fn serve(mut stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    let request = tokio::time::timeout(FIRST_BYTES_TIMEOUT, handshake(&mut stream)).await;
    let (target, port) = match request {
        Ok(Ok(Ok(t))) => t,
        Ok(Ok(Err(code))) => {
            let _ = reply(&mut stream, code).await;
            return;
        }
        // Malformed, closed or too slow: nothing more to say.
        _ => return,
    };
    let (host, dst) = match &target {
        Target::Ip(ip) => (ip.to_string(), SocketAddr::new(*ip, port).to_string()),
        Target::Name(n) => (n.clone(), format!("{n}:{port}")),
    };
    let mut entry = Entry::new("socks5", peer, dst);
    // An address is matched by TCP rules, a name by host rules (`allow_host` tells them apart).
    let verdict = conn::allow_host(&shared.rules(), &host, port);
    let Some(rule) = verdict else {
        let _ = reply(&mut stream, NOT_ALLOWED).await;
        return conn::deny(shared, entry);
    };
    conn::allow(shared, &mut entry, rule);
    let upstream = match conn::connect(&host, port, shared.connect_timeout).await {
        Ok(u) => u,
        Err(e) => {
            let code = match &e {
                UpstreamError::Timeout(_) => TTL_EXPIRED,
                UpstreamError::Resolve(..) => HOST_UNREACHABLE,
                UpstreamError::Connect(_, io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                    CONNECTION_REFUSED
                }
                _ => GENERAL_FAILURE,
            };
            let _ = reply(&mut stream, code).await;
            return conn::upstream_failed(shared, entry, &e);
        }
    };
    if reply(&mut stream, SUCCEEDED).await.is_err() {
        return;
    }
    conn::pump_tcp(stream, upstream, entry, shared).await;
}

/// Reads the greeting and the request. `Ok(Err(code))` is a request to refuse with that reply.
async fn handshake(s: &mut TcpStream) -> std::io::Result<Result<(Target, u16), u8>> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let mut methods = vec![0u8; head[1] as usize];
    s.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        // No acceptable method: the client insists on authentication the proxy does not do.
        s.write_all(&[VERSION, 0xff]).await?;
        return Err(std::io::ErrorKind::PermissionDenied.into());
    }
    s.write_all(&[VERSION, 0]).await?;
    let mut req = [0u8; 4];
    s.read_exact(&mut req).await?;
    if req[0] != VERSION {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let target = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await?;
            Target::Ip(IpAddr::V4(Ipv4Addr::from(a)))
        }
        4 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await?;
            Target::Ip(IpAddr::V6(Ipv6Addr::from(a)))
        }
        3 => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).await?;
            let mut name = vec![0u8; n[0] as usize];
            s.read_exact(&mut name).await?;
            match String::from_utf8(name) {
                Ok(n) if !n.is_empty() => match n.parse::<IpAddr>() {
                    Ok(ip) => Target::Ip(ip),
                    Err(_) => Target::Name(n),
                },
                _ => return Ok(Err(HOST_UNREACHABLE)),
            }
        }
        _ => return Ok(Err(ADDRESS_TYPE_NOT_SUPPORTED)),
    };
    let mut port = [0u8; 2];
    s.read_exact(&mut port).await?;
    if req[1] != 1 {
        // BIND and UDP ASSOCIATE are not offered.
        return Ok(Err(COMMAND_NOT_SUPPORTED));
    }
    Ok(Ok((target, u16::from_be_bytes(port))))
}

async fn reply(s: &mut TcpStream, code: u8) -> std::io::Result<()> {
    // The bound address is not meaningful to clients of a proxy like this one: 0.0.0.0:0.
    s.write_all(&[VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    s.flush().await
}
