//! The connection's socket I/O, kept behind one small type so that another backend (io_uring)
//! can be measured later without touching command code.
//!
//! Built on tokio's `AsyncFd` so that a read that returns less than the buffer's free space
//! clears the socket's readiness at once: the kernel had no more bytes, and an edge arriving
//! after that read re-arms it (tokio clears only if no new event came in meanwhile). Tokio's
//! `TcpStream::read_buf` instead issues one more read that fails with EAGAIN before it parks,
//! one extra system call per request on an unpipelined connection.
// PERF-CRITICAL

use bytes::BytesMut;
use std::io::{self, Write};
use std::net::TcpStream;
use tokio::io::unix::AsyncFd;

pub struct Socket {
    fd: AsyncFd<TcpStream>,
}

impl Socket {
    pub fn new(s: TcpStream) -> io::Result<Socket> {
        s.set_nonblocking(true)?;
        // SAFETY: a std TcpStream owns its fd, keeps it open and returns the same fd until it
        // is dropped, which happens only when the AsyncFd (which owns it) is dropped.
        let fd = unsafe { AsyncFd::register(s) }.map_err(|e| e.into_parts().1)?;
        Ok(Socket { fd })
    }
    /// Gives the socket back (a connection handed over to replication).
    pub fn into_std(self) -> TcpStream {
        self.fd.into_inner()
    }
    pub fn get_ref(&self) -> &TcpStream {
        self.fd.get_ref()
    }
    /// Reads into the buffer's spare capacity; Ok(0) at end of stream.
    pub async fn read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        if buf.capacity() == buf.len() {
            buf.reserve(16 * 1024);
        }
        loop {
            let mut guard = self.fd.readable().await?;
            let spare = buf.spare_capacity_mut();
            let room = spare.len();
            // SAFETY: reading into uninitialised spare capacity is what read(2) is for; the
            // length is only advanced by the number of bytes the kernel wrote.
            let r =
                unsafe { libc::read(std::os::fd::AsRawFd::as_raw_fd(self.fd.get_ref()), spare.as_mut_ptr() as *mut libc::c_void, room) };
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
        while !data.is_empty() {
            match self.fd.get_ref().write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut guard = self.fd.writable().await?;
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
