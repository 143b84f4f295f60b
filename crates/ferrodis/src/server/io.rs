//! The connection's socket I/O, kept behind one small type so that another backend (io_uring)
//! can be measured later without touching command code.
//!
//! Plain TCP is built on tokio's `AsyncFd` so that a read that returns less than the buffer's
//! free space clears the socket's readiness at once: the kernel had no more bytes, and an edge
//! arriving after that read re-arms it (tokio clears only if no new event came in meanwhile).
//! Tokio's `TcpStream::read_buf` instead issues one more read that fails with EAGAIN before it
//! parks, one extra system call per request on an unpipelined connection.
//!
//! A TLS connection (`tls-port`) goes through tokio-rustls's stream; its state sits in a
//! `RefCell` borrowed only inside one poll, so the methods keep taking `&self`.
// PERF-CRITICAL

use bytes::BytesMut;
use std::cell::RefCell;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

type TlsServerStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

pub enum Socket {
    Plain(AsyncFd<TcpStream>),
    Tls(Box<RefCell<TlsServerStream>>),
}

impl Socket {
    pub fn new(s: TcpStream) -> io::Result<Socket> {
        s.set_nonblocking(true)?;
        // SAFETY: a std TcpStream owns its fd, keeps it open and returns the same fd until it
        // is dropped, which happens only when the AsyncFd (which owns it) is dropped.
        let fd = unsafe { AsyncFd::register(s) }.map_err(|e| e.into_parts().1)?;
        Ok(Socket::Plain(fd))
    }
    pub fn tls(s: TlsServerStream) -> Socket {
        Socket::Tls(Box::new(RefCell::new(s)))
    }
    pub fn is_tls(&self) -> bool {
        matches!(self, Socket::Tls(_))
    }
    /// Gives the socket back as a stream (a connection handed over to replication).
    pub fn into_stream(self) -> io::Result<crate::net::Stream> {
        match self {
            Socket::Plain(fd) => Ok(crate::net::Stream::Plain(tokio::net::TcpStream::from_std(fd.into_inner())?)),
            Socket::Tls(s) => Ok(crate::net::Stream::Server(Box::new(s.into_inner()))),
        }
    }
    pub fn fd(&self) -> RawFd {
        match self {
            Socket::Plain(fd) => fd.get_ref().as_raw_fd(),
            Socket::Tls(s) => s.borrow().get_ref().0.as_raw_fd(),
        }
    }
    /// The TCP socket's options and addresses (nodelay, keepalive, local address).
    pub fn with_sock<R>(&self, f: impl FnOnce(socket2::SockRef<'_>) -> R) -> R {
        // SAFETY: the fd stays open as long as `self`, which outlives this call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd()) };
        f(socket2::SockRef::from(&fd))
    }
    /// Reads into the buffer's spare capacity; Ok(0) at end of stream.
    pub async fn read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        if buf.capacity() == buf.len() {
            buf.reserve(16 * 1024);
        }
        let fd = match self {
            Socket::Plain(fd) => fd,
            Socket::Tls(s) => {
                return std::future::poll_fn(|cx| {
                    let mut rb = ReadBuf::uninit(buf.spare_capacity_mut());
                    let r = Pin::new(&mut *s.borrow_mut()).poll_read(cx, &mut rb);
                    r.map_ok(|()| rb.filled().len())
                })
                .await
                .inspect(|&n| {
                    // SAFETY: poll_read initialised and filled exactly `n` bytes of the spare capacity.
                    unsafe { buf.set_len(buf.len() + n) };
                });
            }
        };
        loop {
            let mut guard = fd.readable().await?;
            let spare = buf.spare_capacity_mut();
            let room = spare.len();
            // SAFETY: reading into uninitialised spare capacity is what read(2) is for; the
            // length is only advanced by the number of bytes the kernel wrote.
            let r = unsafe { libc::read(fd.get_ref().as_raw_fd(), spare.as_mut_ptr() as *mut libc::c_void, room) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = r as usize;
            if n < room {
                guard.clear_ready();
            }
            // SAFETY: the kernel initialised exactly `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(n);
        }
    }
    /// Writes all of `data`, waiting for the socket to drain when it is full.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        let fd = match self {
            Socket::Plain(fd) => fd,
            Socket::Tls(s) => {
                while !data.is_empty() {
                    let n = std::future::poll_fn(|cx| Pin::new(&mut *s.borrow_mut()).poll_write(cx, data)).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    data = &data[n..];
                }
                return std::future::poll_fn(|cx| Pin::new(&mut *s.borrow_mut()).poll_flush(cx)).await;
            }
        };
        while !data.is_empty() {
            match fd.get_ref().write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut guard = fd.writable().await?;
                    match guard.try_io(|s| s.get_ref().write(data)) {
                        Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(Ok(n)) => data = &data[n..],
                        Ok(Err(e)) => return Err(e),
                        Err(_would_block) => continue,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
