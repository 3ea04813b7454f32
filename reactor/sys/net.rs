//! Socket calls that mio does not offer: a listener with a chosen backlog and `SO_REUSEPORT`,
//! `SO_LINGER` for abortive closes, TCP keepalive, and the process's file-descriptor limit.
//!
//! Each function is one or two libc calls; the safe code around them (in `listener.rs`,
//! `stream.rs`) decides when to make them.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Turns a libc return value into an `io::Result`, reading `errno` on -1.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Sets an integer socket option.
fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is its size; the kernel only reads
    // it. A bad `fd` is reported as EBADF, not undefined behaviour.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A `sockaddr_storage` holding `addr`, and the length of the part that is used.
fn socket_addr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: `sockaddr_storage` is plain old data; all zeroes is a valid (unspecified) value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is larger than and aligned for every sockaddr type.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>().write(sin)
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// A non-blocking TCP listener on `addr`: `SO_REUSEADDR` always (a restarted server can bind
/// while old connections sit in TIME_WAIT), `SO_REUSEPORT` on request, then `listen(backlog)`.
pub(crate) fn tcp_listener(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: `socket` takes no pointers; the result is checked before use.
    let fd = check(unsafe { libc::socket(domain, kind, 0) })?;
    // SAFETY: `fd` was just returned by `socket` and is owned by nobody else, so `OwnedFd`
    // may take it (and close it on every error path below).
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuse_port {
        set_int_option(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    let (storage, len) = socket_addr(&addr);
    // SAFETY: `storage` is a valid sockaddr of `len` bytes for `addr`'s family.
    check(unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) })?;
    // SAFETY: no pointers.
    check(unsafe { libc::listen(fd, backlog) })?;
    Ok(std::net::TcpListener::from(socket))
}

/// Makes the next `close` of this socket abortive: the kernel discards unsent data and sends
/// RST instead of FIN (`SO_LINGER` with a zero timeout).
pub(crate) fn set_linger_zero(socket: &impl AsRawFd) -> io::Result<()> {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: `linger` is a live struct and the length passed is its size; the kernel reads it.
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Turns TCP keepalive on, with the first probe after `idle` (and probes every `idle` after
/// that), or off with `None`.
pub(crate) fn set_keepalive(socket: &impl AsRawFd, idle: Option<Duration>) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, idle.is_some() as libc::c_int)?;
    if let Some(idle) = idle {
        let secs = idle.as_secs().clamp(1, i32::MAX as u64) as libc::c_int;
        set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)?;
        set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs)?;
    }
    Ok(())
}

/// Raises the soft limit on open file descriptors to the hard limit and returns the new soft
/// limit. See [`crate::raise_fd_limit`].
pub(crate) fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a live, writable rlimit.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a live rlimit; the kernel only reads it.
        check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) })?;
    }
    Ok(limit.rlim_cur)
}
