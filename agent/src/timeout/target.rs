//! What a blocked call's arguments point at, read from outside the target: its memory
//! (process_vm_readv), its file descriptors (`/proc/PID/fd`, `fdinfo`), its TCP tables
//! (`/proc/PID/net/tcp{,6}`, the target's own network namespace), `/proc/locks`, and a
//! socket's `SO_RCVTIMEO`/`SO_SNDTIMEO` through a pidfd copy of the descriptor.
//!
//! None of this stops or attaches to the target. Everything here needs the same right as
//! `/proc/PID/task/TID/syscall` (PTRACE_MODE_ATTACH: root or CAP_SYS_PTRACE).

use lookout_detectors::timeout::{Party, Role, Timeout};
use procfs::net::TcpState;
use procfs::process::{FDTarget, Process};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::str::FromStr;

/// Read `buf.len()` bytes at `addr` of process `pid`. Hand-written because no maintained crate
/// wraps process_vm_readv for a single small read; it is one libc call.
pub fn read_mem(pid: i32, addr: u64, buf: &mut [u8]) -> bool {
    if addr == 0 || buf.is_empty() {
        return false;
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` points at `buf`, valid and writable for its length; the remote iovec is
    // only interpreted by the kernel in the target's address space.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    n == buf.len() as isize
}

pub fn read_u32(pid: i32, addr: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    read_mem(pid, addr, &mut b).then(|| u32::from_ne_bytes(b))
}

/// A `struct timespec` or `struct timeval` (both two 64-bit words on x86_64) at `addr`;
/// `nano` says which. `None` when unreadable.
pub fn read_time(pid: i32, addr: u64, nano: bool) -> Option<f64> {
    let mut b = [0u8; 16];
    if !read_mem(pid, addr, &mut b) {
        return None;
    }
    let sec = i64::from_ne_bytes(b[0..8].try_into().ok()?);
    let frac = i64::from_ne_bytes(b[8..16].try_into().ok()?);
    let div = if nano { 1e9 } else { 1e6 };
    Some(sec as f64 + frac as f64 / div)
}

/// Seconds on `clock` (CLOCK_MONOTONIC, CLOCK_REALTIME, ...).
pub fn clock_secs(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The TCP sockets of the target's network namespace, by inode.
#[derive(Default)]
pub struct TcpTable {
    by_inode: HashMap<u64, (std::net::SocketAddr, std::net::SocketAddr, TcpState)>,
    /// Local (addr, port) of listeners.
    listeners: Vec<std::net::SocketAddr>,
}

impl TcpTable {
    pub fn read(pid: i32) -> Self {
        let mut t = TcpTable::default();
        let Ok(p) = Process::new(pid) else { return t };
        for e in p.tcp().into_iter().chain(p.tcp6()).flatten() {
            if matches!(e.state, TcpState::Listen) {
                t.listeners.push(e.local_address);
            }
            t.by_inode
                .insert(e.inode, (e.local_address, e.remote_address, e.state));
        }
        t
    }

    /// The party of a TCP socket, or `None` when the inode is not TCP (unix, UDP, netlink).
    /// `bytes` is filled later, for client sockets only.
    pub fn party(&self, inode: u64) -> Option<Party> {
        let (local, remote, state) = self.by_inode.get(&inode)?;
        let role = match state {
            TcpState::Listen => Role::Listener,
            TcpState::SynSent => Role::Client,
            TcpState::Close => Role::Other,
            _ if self.is_listening(local) => Role::Accepted,
            _ => Role::Client,
        };
        let peer =
            (!matches!(state, TcpState::Listen | TcpState::Close)).then(|| remote.to_string());
        Some(Party::Socket {
            inode,
            role,
            state: tcp_state_name(state).into(),
            peer,
            bytes: None,
        })
    }

    /// A connection whose local port a local listener owns was accepted by it.
    fn is_listening(&self, local: &std::net::SocketAddr) -> bool {
        self.listeners
            .iter()
            .any(|l| l.port() == local.port() && (l.ip().is_unspecified() || l.ip() == local.ip()))
    }
}

fn tcp_state_name(s: &TcpState) -> &'static str {
    match s {
        TcpState::Established => "ESTABLISHED",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::FinWait1 => "FIN_WAIT1",
        TcpState::FinWait2 => "FIN_WAIT2",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::Listen => "LISTEN",
        TcpState::Closing => "CLOSING",
        TcpState::NewSynRecv => "NEW_SYN_RECV",
    }
}

/// What a file descriptor of the target is.
pub enum FdKind {
    Socket(u64),
    Stream,
    Epoll,
    Other,
    Gone,
}

pub fn fd_kind(pid: i32, fd: i32) -> FdKind {
    let Ok(link) = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) else {
        return FdKind::Gone;
    };
    let text = link.to_string_lossy();
    match FDTarget::from_str(&text) {
        Ok(FDTarget::Socket(inode)) => FdKind::Socket(inode),
        Ok(FDTarget::Pipe(_)) => FdKind::Stream,
        Ok(FDTarget::AnonInode(k)) if k.contains("eventpoll") => FdKind::Epoll,
        Ok(FDTarget::Path(p)) => {
            let p = p.to_string_lossy();
            if p.starts_with("/dev/pts/") || p.starts_with("/dev/tty") || p == "/dev/console" {
                FdKind::Stream
            } else {
                FdKind::Other
            }
        }
        _ => FdKind::Other,
    }
}

/// The descriptors an epoll instance watches (`tfd:` lines of its fdinfo), at most `cap`.
pub fn epoll_members(pid: i32, epfd: i32, cap: usize) -> Vec<i32> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{epfd}")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("tfd:"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .take(cap)
        .collect()
}

/// The holder of the file lock a blocked flock/fcntl waits for on `fd`: `pid N (comm)`.
pub fn file_lock_holder(pid: i32, fd: i32) -> Option<String> {
    let meta = std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).ok()?;
    use std::os::unix::fs::MetadataExt;
    let (dev, ino) = (meta.dev(), meta.ino());
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let locks = procfs::locks().ok()?;
    let holder = locks
        .iter()
        .filter(|l| l.inode == ino && l.devmaj == maj && l.devmin == min)
        .filter_map(|l| l.pid)
        .find(|p| *p != pid)?;
    let comm = std::fs::read_to_string(format!("/proc/{holder}/comm")).unwrap_or_default();
    Some(format!("pid {holder} ({})", comm.trim()))
}

/// A pidfd of the target, to copy its sockets for getsockopt.
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// What a copy of the target's socket tells: SO_RCVTIMEO, SO_SNDTIMEO, and TCP_INFO's byte
/// counters.
pub struct SocketInfo {
    pub recv_timeout: Timeout,
    pub send_timeout: Timeout,
    /// (bytes received, bytes acked) of a TCP socket.
    pub bytes: Option<(u64, u64)>,
}

/// Ask the target's socket `fd`: a copy of the descriptor is taken with pidfd_getfd, asked,
/// and closed at once. A (0, 0) timeout means none. `None` when the copy cannot be made.
pub fn socket_info(pidfd: &OwnedFd, fd: i32) -> Option<SocketInfo> {
    // SAFETY: plain syscall; a non-negative result is a new descriptor we own (closed on drop).
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return None;
    }
    // SAFETY: `copy` is a fresh descriptor nobody else owns.
    let copy = unsafe { OwnedFd::from_raw_fd(copy as i32) };
    let info = SocketInfo {
        recv_timeout: sock_timeout(&copy, libc::SO_RCVTIMEO),
        send_timeout: sock_timeout(&copy, libc::SO_SNDTIMEO),
        bytes: tcp_bytes(&copy),
    };
    drop(copy);
    Some(info)
}

fn sock_timeout(sock: &OwnedFd, opt: libc::c_int) -> Timeout {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: tv and len are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        Timeout::Unknown
    } else if tv.tv_sec == 0 && tv.tv_usec == 0 {
        Timeout::Infinite
    } else {
        Timeout::Finite(tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6)
    }
}

fn tcp_bytes(sock: &OwnedFd) -> Option<(u64, u64)> {
    // SAFETY: tcp_info is plain old data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len are valid for writes of the sizes given; the kernel writes at most
    // `len` bytes and reports how many.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_received) + 8;
    (rc == 0 && len as usize >= needed).then_some((info.tcpi_bytes_received, info.tcpi_bytes_acked))
}
