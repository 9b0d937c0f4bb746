//! Running an external porch (docs/executors.md): `posix_spawn` (vfork-fast, where a fork would copy
//! the worker's page tables) in a new session, stdin from `/dev/null`, stdout and stderr to pipes, an
//! empty signal mask and the given signals at their default disposition; then a `pidfd` wait that
//! keeps the last bytes of each stream, a timeout that kills the whole process group (SIGTERM, then
//! SIGKILL after a grace), and the reap, which first sends SIGKILL to whatever is left of the group.
//!
//! [`Run::step`] returns at least every [`STEP`], so that the caller can run Python's signal handlers
//! between steps (a worker's abort signal unwinds through it, and [`Run::reap`] still kills porch's
//! group on the way out).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::{Duration, Instant};

/// The longest one [`Run::step`] waits before it hands control back.
pub const STEP: Duration = Duration::from_millis(200);

/// One output stream of porch: the read end of its pipe and the last bytes read from it.
struct Stream {
    fd: Option<OwnedFd>,
    buf: Vec<u8>,
}

impl Stream {
    /// Read what is there (one read); a closed pipe is dropped from the poll set.
    fn read(&mut self, tail: usize) {
        let Some(fd) = self.fd.as_ref() else { return };
        let mut chunk = [0u8; 65536];
        // SAFETY: `chunk` is a valid writable buffer of the given length; `fd` is open.
        let n = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        if n > 0 {
            self.buf.extend_from_slice(&chunk[..n as usize]);
            if self.buf.len() > 2 * tail {
                let cut = self.buf.len() - tail;
                self.buf.drain(..cut);
            }
        } else if n == 0 || !matches!(errno(), libc::EINTR | libc::EAGAIN) {
            self.fd = None; // EOF (or a broken pipe): nothing more will come
        }
    }

    fn tail(&self, tail: usize) -> Vec<u8> {
        self.buf[self.buf.len().saturating_sub(tail)..].to_vec()
    }
}

/// How long porch may run and how much of its output is kept.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// SIGTERM to the group after this long (`None`: never).
    pub timeout: Option<Duration>,
    /// SIGKILL to the group this long after the SIGTERM.
    pub kill_grace: Duration,
    /// How long to keep reading after porch exited while a leftover descendant holds its pipes.
    pub pipe_grace: Duration,
    /// Bytes kept of each stream (the last ones).
    pub tail: usize,
    /// Wait on a `pidfd` (else poll `waitid(WNOWAIT)` every 10 ms, for kernels without `pidfd_open`).
    pub pidfd: bool,
}

/// A porch process being watched.
pub struct Run {
    pid: libc::pid_t,
    out: Stream,
    err: Stream,
    pidfd: Option<OwnedFd>,
    deadline: Option<Instant>,
    kill_at: Option<Instant>,
    drain_until: Option<Instant>,
    kill_grace: Duration,
    pipe_grace: Duration,
    tail: usize,
    exited: bool,
    /// The timeout fired (the group was sent SIGTERM).
    pub timed_out: bool,
}

/// What a finished run returns: the raw wait status (`None` when it was reaped elsewhere), whether
/// it timed out, and the last `tail` bytes of stdout and stderr.
pub type Outcome = (Option<i32>, bool, Vec<u8>, Vec<u8>);

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), i32> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(errno());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn pointers(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(ptr::null_mut()))
        .collect()
}

/// `posix_spawn` `path` with `argv` and `env` as described in the module docs; errno on failure.
fn posix_spawn(
    path: &CString,
    argv: &[CString],
    env: &[CString],
    sigdef: &[i32],
    w_out: RawFd,
    w_err: RawFd,
) -> Result<libc::pid_t, i32> {
    let argv_p = pointers(argv);
    let env_p = pointers(env);
    let devnull = c"/dev/null";
    let mut pid: libc::pid_t = 0;
    // SAFETY: every structure is initialised before use and destroyed after; the pointer arrays are
    // NULL-terminated and outlive the call; the descriptors are open.
    unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut fa);
        libc::posix_spawnattr_init(&mut attr);
        let mut rc =
            libc::posix_spawn_file_actions_addopen(&mut fa, 0, devnull.as_ptr(), libc::O_RDONLY, 0);
        if rc == 0 {
            rc = libc::posix_spawn_file_actions_adddup2(&mut fa, w_out, 1);
        }
        if rc == 0 {
            rc = libc::posix_spawn_file_actions_adddup2(&mut fa, w_err, 2);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if rc == 0 {
            rc = libc::posix_spawnattr_setsigmask(&mut attr, &set);
        }
        for &sig in sigdef {
            libc::sigaddset(&mut set, sig);
        }
        if rc == 0 {
            rc = libc::posix_spawnattr_setsigdefault(&mut attr, &set);
        }
        let flags = libc::POSIX_SPAWN_SETSID as libc::c_int
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        if rc == 0 {
            rc = libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
        }
        if rc == 0 {
            rc = libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &fa,
                &attr,
                argv_p.as_ptr(),
                env_p.as_ptr(),
            );
        }
        libc::posix_spawn_file_actions_destroy(&mut fa);
        libc::posix_spawnattr_destroy(&mut attr);
        if rc != 0 {
            return Err(rc);
        }
    }
    Ok(pid)
}

fn killpg(pid: libc::pid_t, sig: i32) {
    // SAFETY: plain syscall; a group that is gone (ESRCH) or not ours (EPERM) is ignored.
    unsafe { libc::killpg(pid, sig) };
}

impl Run {
    /// Spawn porch (see the module docs); an errno when the pipes or the spawn fail.
    pub fn start(
        path: &CString,
        argv: &[CString],
        env: &[CString],
        sigdef: &[i32],
        limits: Limits,
    ) -> Result<Run, i32> {
        let (r_out, w_out) = pipe()?;
        let (r_err, w_err) = pipe()?;
        let pid = posix_spawn(
            path,
            argv,
            env,
            sigdef,
            w_out.as_raw_fd(),
            w_err.as_raw_fd(),
        )?;
        drop((w_out, w_err));
        // SAFETY: plain syscall; the pid is our child, not reaped yet.
        let raw = if limits.pidfd {
            unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }
        } else {
            -1
        };
        // SAFETY: a non-negative return is a new descriptor owned by nobody else.
        let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as RawFd) });
        Ok(Run {
            pid,
            out: Stream {
                fd: Some(r_out),
                buf: Vec::new(),
            },
            err: Stream {
                fd: Some(r_err),
                buf: Vec::new(),
            },
            pidfd,
            deadline: limits.timeout.map(|t| Instant::now() + t),
            kill_at: None,
            drain_until: None,
            kill_grace: limits.kill_grace,
            pipe_grace: limits.pipe_grace,
            tail: limits.tail,
            exited: false,
            timed_out: false,
        })
    }

    fn exit_seen(&mut self, now: Instant) {
        self.exited = true;
        self.pidfd = None;
        self.drain_until = Some(now + self.pipe_grace);
    }

    /// Without a pidfd: has porch terminated? (Not reaped: its pid and group stay reserved.)
    fn exited_nowait(&self) -> bool {
        // SAFETY: `info` is a valid out-parameter; WNOWAIT leaves the child to reap.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let rc = libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            rc != 0 || info.si_pid() == self.pid
        }
    }

    /// Porch exited and its pipes are closed (or the drain grace is over).
    fn done(&mut self, now: Instant) -> bool {
        if !self.exited && self.pidfd.is_none() && self.exited_nowait() {
            self.exit_seen(now);
        }
        let open = self.out.fd.is_some() || self.err.fd.is_some();
        self.exited && (!open || self.drain_until.is_some_and(|d| now >= d))
    }

    /// On timeout SIGTERM the group; `kill_grace` later, SIGKILL it.
    fn timers(&mut self, now: Instant) {
        if !self.timed_out && !self.exited && self.deadline.is_some_and(|d| now >= d) {
            self.timed_out = true;
            killpg(self.pid, libc::SIGTERM);
            self.kill_at = Some(now + self.kill_grace);
        }
        if self.kill_at.is_some_and(|k| now >= k) {
            killpg(self.pid, libc::SIGKILL);
            self.kill_at = None;
        }
    }

    fn wake(&self, now: Instant, until: Instant) -> i32 {
        let deadline = if self.timed_out { None } else { self.deadline };
        let mut wake = until;
        for t in [deadline, self.kill_at, self.drain_until]
            .into_iter()
            .flatten()
        {
            wake = wake.min(t);
        }
        let mut ms = wake.saturating_duration_since(now).as_millis() as i32 + 1;
        if self.pidfd.is_none() && !self.exited {
            ms = ms.min(10);
        }
        ms
    }

    /// One poll for output, the exit or the next timer; false when interrupted by a signal.
    fn poll(&mut self, now: Instant, until: Instant) -> bool {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(3);
        for fd in [
            self.out.fd.as_ref(),
            self.err.fd.as_ref(),
            self.pidfd.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            fds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let ms = self.wake(now, until);
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            return errno() != libc::EINTR;
        }
        for p in fds.iter().filter(|p| p.revents != 0) {
            if self.pidfd.as_ref().is_some_and(|f| f.as_raw_fd() == p.fd) {
                self.exit_seen(Instant::now());
            } else if self.out.fd.as_ref().is_some_and(|f| f.as_raw_fd() == p.fd) {
                self.out.read(self.tail);
            } else {
                self.err.read(self.tail);
            }
        }
        true
    }

    /// Watch porch for up to `budget` (or until a signal arrives); true once it is done.
    pub fn step(&mut self, budget: Duration) -> bool {
        let until = Instant::now() + budget;
        loop {
            let now = Instant::now();
            if self.done(now) {
                return true;
            }
            self.timers(now);
            if !self.poll(now, until) || Instant::now() >= until {
                return self.done(Instant::now());
            }
        }
    }

    /// Kill what is left of porch's group, close the pipes, reap porch; the outcome.
    pub fn reap(mut self) -> Outcome {
        // The leader is a zombie (or about to be killed): its pid and group id cannot be reused yet,
        // so this reaches only what is left of porch's own group.
        killpg(self.pid, libc::SIGKILL);
        self.pidfd = None;
        let (out, err) = (self.out.tail(self.tail), self.err.tail(self.tail));
        self.out.fd = None;
        self.err.fd = None;
        let mut status: libc::c_int = 0;
        let reaped = loop {
            // SAFETY: `status` is a valid out-parameter; the pid is our child.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc == self.pid {
                break Some(status);
            }
            if rc < 0 && errno() == libc::EINTR {
                continue;
            }
            break None; // ECHILD: reaped elsewhere
        };
        (reaped, self.timed_out, out, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> CString {
        CString::new(s).expect("no NUL")
    }

    fn limits(timeout: Option<Duration>) -> Limits {
        Limits {
            timeout,
            kill_grace: Duration::from_millis(200),
            pipe_grace: Duration::from_millis(100),
            tail: 16,
            pidfd: true,
        }
    }

    fn run(argv: &[&str], timeout: Option<Duration>) -> Outcome {
        let args: Vec<CString> = argv.iter().map(|a| c(a)).collect();
        let env = [c("PATH=/usr/bin:/bin")];
        let mut r = Run::start(&args[0], &args, &env, &[], limits(timeout)).expect("spawn");
        while !r.step(STEP) {}
        r.reap()
    }

    #[test]
    fn exit_status_and_output_tails() {
        let (status, timed_out, out, err) = run(
            &[
                "/bin/sh",
                "-c",
                "echo 0123456789abcdefXYZ; echo oops >&2; exit 3",
            ],
            None,
        );
        let status = status.expect("reaped");
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3);
        assert!(!timed_out);
        assert_eq!(out, b"456789abcdefXYZ\n"); // the last 16 bytes
        assert_eq!(err, b"oops\n");
    }

    #[test]
    fn timeout_kills_the_group() {
        let t0 = Instant::now();
        let (status, timed_out, _, _) = run(
            &["/bin/sh", "-c", "sleep 30 & sleep 30"],
            Some(Duration::from_millis(100)),
        );
        assert!(timed_out);
        assert!(libc::WIFSIGNALED(status.expect("reaped")));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn without_a_pidfd_the_waitid_polling_gives_the_same() {
        let args: Vec<CString> = ["/bin/sh", "-c", "echo hi; exit 5"]
            .iter()
            .map(|a| c(a))
            .collect();
        let limits = Limits {
            pidfd: false,
            ..limits(None)
        };
        let mut r = Run::start(&args[0], &args, &[], &[], limits).expect("spawn");
        while !r.step(STEP) {}
        let (status, timed_out, out, _) = r.reap();
        let status = status.expect("reaped");
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 5 && !timed_out);
        assert_eq!(out, b"hi\n");
    }

    #[test]
    fn missing_program_is_an_errno() {
        let args = [c("/nonexistent/porch")];
        let e = Run::start(&args[0], &args, &[], &[], limits(None)).err();
        assert_eq!(e, Some(libc::ENOENT));
    }
}
