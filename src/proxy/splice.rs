//! Zero-copy relaying between two TCP sockets: splice(2) moves the bytes socket → pipe → socket
//! inside the kernel, so they are never copied through the proxy's memory. Each direction gets its
//! pipe when its first bytes arrive, so an idle connection holds no buffer at all.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// The most one splice call moves (the default pipe capacity).
const CHUNK: usize = 64 * 1024;

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        Ok(unsafe {
            Pipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            }
        })
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors, no offsets; the kernel checks both.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Carries bytes both ways until both directions have ended; an end of stream from one side is
/// passed on as a half-close to the other. Returns the bytes moved a → b and b → a, and the error that
/// ended the relay early, if any (both sockets should then be closed).
pub async fn relay(a: &TcpStream, b: &TcpStream) -> (u64, u64, Option<io::Error>) {
    let ab = AtomicU64::new(0);
    let ba = AtomicU64::new(0);
    let result = tokio::try_join!(one_way(a, b, &ab), one_way(b, a, &ba));
    (ab.load(Ordering::Relaxed), ba.load(Ordering::Relaxed), result.err())
}

async fn one_way(src: &TcpStream, dst: &TcpStream, moved: &AtomicU64) -> io::Result<()> {
    let mut pipe: Option<Pipe> = None;
    loop {
        // Fill the (empty) pipe from the source.
        let n = loop {
            src.readable().await?;
            if pipe.is_none() {
                pipe = Some(Pipe::new()?);
            }
            let Some(p) = pipe.as_ref() else { continue };
            match src.try_io(Interest::READABLE, || {
                splice(src.as_raw_fd(), p.write.as_raw_fd(), CHUNK)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            // The source has finished sending: pass the half-close on.
            let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
            return Ok(());
        }
        // Drain it into the destination.
        let mut left = n;
        while left > 0 {
            dst.writable().await?;
            let Some(p) = pipe.as_ref() else { break };
            match dst.try_io(Interest::WRITABLE, || splice(p.read.as_raw_fd(), dst.as_raw_fd(), left)) {
                Ok(m) => {
                    left -= m;
                    moved.fetch_add(m as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, s)
    }

    #[tokio::test]
    async fn relays_both_ways_with_half_close() {
        // client <-> (p1 | p2) <-> server, p1/p2 relayed by splice.
        let (mut client, p1) = pair().await;
        let (p2, mut server) = pair().await;
        let relay = tokio::spawn(async move { relay(&p1, &p2).await });
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, big);
        server.write_all(b"thanks").await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"thanks");
        let (ab, ba, err) = relay.await.unwrap();
        assert_eq!((ab, ba), (3_000_000, 6));
        assert!(err.is_none(), "{err:?}");
    }
}
