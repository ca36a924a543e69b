//! Zero-copy relaying between two TCP sockets: splice(2) moves the bytes socket → pipe → socket
//! inside the kernel, so they are never copied through the proxy's memory.
//!
//! A direction holds a pipe only while bytes are in it: pipes come from a small per-thread pool and go
//! back once drained. An idle connection therefore holds no buffer and no pipe (just its two
//! sockets), which keeps thousands of open connections within the descriptor limit. When no pipe can
//! be had (descriptors exhausted), the chunk is copied through a small buffer instead.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// The most one splice call moves (the default pipe capacity).
pub(super) const CHUNK: usize = 64 * 1024;
/// Empty pipes kept per thread for the next chunk.
const POOL: usize = 128;
/// The copy buffer when no pipe can be had.
const FALLBACK: usize = 16 * 1024;

pub(super) struct Pipe {
    pub(super) read: OwnedFd,
    pub(super) write: OwnedFd,
}

thread_local! {
    static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
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

    /// An empty pipe: from this thread's pool, else a new one (None when descriptors ran out).
    pub(super) fn take() -> Option<Pipe> {
        PIPES.with(|p| p.borrow_mut().pop()).or_else(|| Pipe::new().ok())
    }

    /// Returns an empty pipe to the pool (or closes it when the pool is full).
    pub(super) fn give_back(self) {
        PIPES.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL {
                p.push(self);
            }
        });
    }
}

pub(super) fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
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
    let ended = AtomicBool::new(false);
    let result = tokio::try_join!(one_way(a, b, &ab, &ended), one_way(b, a, &ba, &ended));
    (ab.load(Ordering::Relaxed), ba.load(Ordering::Relaxed), result.err())
}

async fn one_way(src: &TcpStream, dst: &TcpStream, moved: &AtomicU64, ended: &AtomicBool) -> io::Result<()> {
    loop {
        src.readable().await?;
        let Some(pipe) = Pipe::take() else {
            if copy_chunk(src, dst, moved).await? {
                continue;
            }
            return finish(dst, ended);
        };
        // Fill the empty pipe from the source.
        let n = match src.try_io(Interest::READABLE, || {
            splice(src.as_raw_fd(), pipe.write.as_raw_fd(), CHUNK)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pipe.give_back();
                continue;
            }
            // The pipe may hold nothing useful now; let it close.
            Err(e) => return Err(e),
        };
        if n == 0 {
            pipe.give_back();
            return finish(dst, ended);
        }
        // Drain it into the destination.
        let mut left = n;
        while left > 0 {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || {
                splice(pipe.read.as_raw_fd(), dst.as_raw_fd(), left)
            }) {
                Ok(m) => {
                    left -= m;
                    moved.fetch_add(m as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        pipe.give_back();
    }
}

/// The source has finished sending: pass the half-close on. When the other direction has already
/// ended, both sockets are about to be closed, which sends the FIN anyway: one system call saved per
/// connection.
fn finish(dst: &TcpStream, ended: &AtomicBool) -> io::Result<()> {
    if !ended.swap(true, Ordering::AcqRel) {
        let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
    }
    Ok(())
}

/// Copies one chunk through memory (no pipe could be had). False at the end of the stream.
async fn copy_chunk(src: &TcpStream, dst: &TcpStream, moved: &AtomicU64) -> io::Result<bool> {
    let mut buf = vec![0u8; FALLBACK];
    let n = loop {
        match src.try_read(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => src.readable().await?,
            Err(e) => return Err(e),
        }
    };
    if n == 0 {
        return Ok(false);
    }
    let mut done = 0;
    while done < n {
        dst.writable().await?;
        match dst.try_write(&buf[done..n]) {
            Ok(m) => {
                done += m;
                moved.fetch_add(m as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
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
