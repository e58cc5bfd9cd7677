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

/// One TCP socket of the table.
#[derive(Clone)]
pub struct TcpEntry {
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
    pub state: TcpState,
    /// Bytes received and not yet read by the owner.
    pub rx_queue: u32,
    /// Bytes written and not yet acknowledged by the peer (unsent ones included).
    pub tx_queue: u32,
}

/// The TCP sockets of the target's network namespace, by inode.
#[derive(Default)]
pub struct TcpTable {
    by_inode: HashMap<u64, TcpEntry>,
    /// (local, remote) → inode, to find the other end of a connection on this host.
    by_ends: HashMap<(std::net::SocketAddr, std::net::SocketAddr), u64>,
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
            } else {
                t.by_ends
                    .insert((plain(e.local_address), plain(e.remote_address)), e.inode);
            }
            t.by_inode.insert(
                e.inode,
                TcpEntry {
                    local: e.local_address,
                    remote: e.remote_address,
                    state: e.state,
                    rx_queue: e.rx_queue,
                    tx_queue: e.tx_queue,
                },
            );
        }
        t
    }

    /// The listener that accepts connections to `addr`.
    pub fn listener_of(&self, addr: std::net::SocketAddr) -> Option<u64> {
        let addr = plain(addr);
        self.by_inode
            .iter()
            .find(|(_, e)| {
                matches!(e.state, TcpState::Listen)
                    && plain(e.local).port() == addr.port()
                    && (e.local.ip().is_unspecified() || plain(e.local).ip() == addr.ip())
            })
            .map(|(i, _)| *i)
    }

    pub fn entry(&self, inode: u64) -> Option<&TcpEntry> {
        self.by_inode.get(&inode)
    }

    /// The other end of connection `inode` when it is a socket of this network namespace:
    /// its inode and entry.
    pub fn other_end(&self, inode: u64) -> Option<(u64, &TcpEntry)> {
        let e = self.by_inode.get(&inode)?;
        let other = *self.by_ends.get(&(plain(e.remote), plain(e.local)))?;
        (other != inode).then(|| (other, &self.by_inode[&other]))
    }

    /// The party of a TCP socket, or `None` when the inode is not TCP (unix, UDP, netlink).
    /// `bytes` is filled later, for client sockets only.
    pub fn party(&self, inode: u64) -> Option<Party> {
        let TcpEntry {
            local,
            remote,
            state,
            ..
        } = self.by_inode.get(&inode)?;
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
            link: None,
        })
    }

    /// A connection whose local port a local listener owns was accepted by it.
    fn is_listening(&self, local: &std::net::SocketAddr) -> bool {
        self.listeners
            .iter()
            .any(|l| l.port() == local.port() && (l.ip().is_unspecified() || l.ip() == local.ip()))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is: a dual-stack client (the JVM) has
/// its end in tcp6 while an IPv4 server has the other in tcp.
fn plain(a: std::net::SocketAddr) -> std::net::SocketAddr {
    match a {
        std::net::SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => std::net::SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
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
    /// A terminal.
    Stream,
    Pipe,
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
        Ok(FDTarget::Pipe(_)) => FdKind::Pipe,
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

/// The descriptors an epoll instance watches (`tfd:` lines of its fdinfo), at most `cap`,
/// each with the `data` word the program registered it with (an event loop's cookie: the
/// fd itself for libuv and Python, a pointer to the runtime's poll descriptor for Go).
pub fn epoll_members(pid: i32, epfd: i32, cap: usize) -> Vec<(i32, u64)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{epfd}")) else {
        return Vec::new();
    };
    text.lines().filter_map(parse_tfd).take(cap).collect()
}

/// `tfd:        6 events: 8000201d data:     7f25cda46ed8  pos:0 ino:5d24 sdev:9`
fn parse_tfd(line: &str) -> Option<(i32, u64)> {
    let rest = line.strip_prefix("tfd:")?;
    let mut it = rest.split_whitespace();
    let fd = it.next()?.parse().ok()?;
    let mut data = 0;
    while let Some(w) = it.next() {
        if w == "data:" {
            data = u64::from_str_radix(it.next()?, 16).ok()?;
            break;
        }
    }
    Some((fd, data))
}

/// The deadline Go's netpoller keeps for descriptor `fd`, from the `pollDesc` its epoll
/// registration points at: `Some(Infinite)` when it has none, `Some(Finite(seconds left))`
/// when a read or write deadline is set, `None` when `data` is not a Go pollDesc.
///
/// Go does not hand deadlines to the kernel: a `conn.SetReadDeadline` is a runtime timer, and
/// the one epoll_wait of the process sleeps until the earliest timer of any goroutine. What
/// the kernel does show is the epoll registration's data word, a pointer to the runtime's
/// `pollDesc` (tagged with a sequence number in the high or low bits since Go 1.21), whose
/// second word is the fd (stable since Go 1.4: the self-check that this is one) and which
/// holds the read and write deadlines as nanotime (CLOCK_MONOTONIC ns), each twice: in the
/// deadline field and in its timer's `when`. The layout between them changes across Go
/// versions, so the deadline is found as a future nanotime that appears twice, not by offset.
pub fn go_deadline(pid: i32, fd: i32, data: u64) -> Option<Timeout> {
    // Go ≤ 1.20 registers the plain pointer; 1.21+ packs it as ptr << 16 | tag
    // (taggedPointer, 48 address bits), unpacked as (data as i64 >> 19) << 3.
    let candidates = [data, (((data as i64) >> 19) << 3) as u64];
    for ptr in candidates {
        if ptr < 4096 || ptr % 8 != 0 {
            continue;
        }
        let mut buf = [0u8; 320];
        if !read_mem(pid, ptr, &mut buf) {
            continue;
        }
        let words: Vec<i64> = buf
            .chunks_exact(8)
            .map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes")))
            .collect();
        if words[1] != i64::from(fd) {
            continue;
        }
        let now_ns = (clock_secs(libc::CLOCK_MONOTONIC) * 1e9) as i64;
        // Go caps far deadlines; a year is beyond any timeout question.
        let horizon = now_ns + 365 * 86_400 * 1_000_000_000;
        let mut best: Option<i64> = None;
        for (i, w) in words.iter().enumerate().skip(2) {
            if *w > now_ns
                && *w < horizon
                && words[i + 1..].contains(w)
                && best.is_none_or(|b| *w < b)
            {
                best = Some(*w);
            }
        }
        return Some(match best {
            Some(at) => Timeout::Finite((at - now_ns) as f64 / 1e9),
            None => Timeout::Infinite,
        });
    }
    None
}

/// The process that owns socket `inode` and the descriptor it has it as, found by scanning
/// `/proc/*/fd` (costly: callers cache it per inode).
pub fn socket_owner(inode: u64) -> Option<(i32, i32)> {
    let want = format!("socket:[{inode}]");
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for f in fds.flatten() {
            if std::fs::read_link(f.path()).is_ok_and(|l| l.as_os_str() == want.as_str())
                && let Some(fd) = f.file_name().to_str().and_then(|s| s.parse().ok())
            {
                return Some((pid, fd));
            }
        }
    }
    None
}

/// `comm (pid N)` of a process.
pub fn process_label(pid: i32) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    format!("{} pid {pid}", comm.trim())
}

/// Whether process `pid` is stopped (SIGSTOP, a tracer): state `T` or `t` in its stat.
pub fn is_stopped(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with(['T', 't']))
        })
        .unwrap_or(false)
}

/// Whether a thread of `pid` is blocked waiting on its descriptor `fd`: reading it, or in a
/// poll/select/epoll whose set holds it. An event loop caught running (serving another
/// client) is looked at again a few times before the answer is no.
pub fn waits_on_fd(pid: i32, fd: i32) -> bool {
    for attempt in 0..4 {
        match waits_on_fd_once(pid, fd) {
            Some(found) => return found,
            None if attempt < 3 => std::thread::sleep(std::time::Duration::from_millis(3)),
            None => {}
        }
    }
    false
}

/// `Some(true)`: a thread waits on it; `Some(false)`: every thread sleeps elsewhere; `None`: a
/// thread was running, the answer is open.
fn waits_on_fd_once(pid: i32, fd: i32) -> Option<bool> {
    let mut running = false;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Some(false);
    };
    let mut epolls: HashMap<i32, bool> = HashMap::new();
    for t in tasks.flatten() {
        let Ok(line) = std::fs::read_to_string(t.path().join("syscall")) else {
            continue;
        };
        if line.starts_with("running") {
            running = true;
            continue;
        }
        let mut it = line.split_whitespace();
        let Some(nr) = it.next().and_then(|n| n.parse::<i64>().ok()) else {
            continue;
        };
        let args: Vec<u64> = it
            .take(6)
            .filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
            .collect();
        if args.len() < 6 {
            continue;
        }
        let hit = match nr {
            // read, readv, recvfrom, recvmsg
            0 | 19 | 45 | 47 => args[0] as i32 == fd,
            // epoll_wait, epoll_pwait, epoll_pwait2
            232 | 281 | 441 => *epolls.entry(args[0] as i32).or_insert_with(|| {
                epoll_members(pid, args[0] as i32, 65_536)
                    .iter()
                    .any(|(m, _)| *m == fd)
            }),
            // poll, ppoll: struct pollfd { int fd; short events; short revents; }
            7 | 271 => {
                let n = (args[1] as usize).min(4096);
                let mut buf = vec![0u8; n * 8];
                read_mem(pid, args[0], &mut buf)
                    && buf
                        .chunks_exact(8)
                        .any(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]) == fd)
            }
            // select, pselect6: the read set
            23 | 270 => {
                let n = (args[0] as usize).min(1024);
                let mut buf = vec![0u8; n.div_ceil(64) * 8];
                (fd as usize) < n
                    && read_mem(pid, args[1], &mut buf)
                    && buf[fd as usize / 8] & (1 << (fd % 8)) != 0
            }
            _ => false,
        };
        if hit {
            return Some(true);
        }
    }
    (!running).then_some(false)
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

/// What a copy of the target's socket tells: SO_RCVTIMEO, SO_SNDTIMEO, and TCP_INFO.
pub struct SocketInfo {
    pub recv_timeout: Timeout,
    pub send_timeout: Timeout,
    /// (bytes received, bytes acked) of a TCP socket.
    pub bytes: Option<(u64, u64)>,
    /// (ms since data was last received, ms since data was last sent) of a TCP socket.
    pub last_data: Option<(u32, u32)>,
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
        bytes: None,
        last_data: None,
    };
    let mut info = info;
    if let Some(t) = tcp_info(&copy) {
        info.bytes = Some((t.tcpi_bytes_received, t.tcpi_bytes_acked));
        info.last_data = Some((t.tcpi_last_data_recv, t.tcpi_last_data_sent));
    }
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

fn tcp_info(sock: &OwnedFd) -> Option<libc::tcp_info> {
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
    (rc == 0 && len as usize >= needed).then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_fdinfo_lines_give_fd_and_data() {
        assert_eq!(
            parse_tfd(
                "tfd:        6 events: 8000201d data:     7f25cda46ed8  pos:0 ino:5d24 sdev:9"
            ),
            Some((6, 0x7f25_cda4_6ed8))
        );
        assert_eq!(parse_tfd("pos:	0"), None);
    }
}
