//! Starting porch: its own session, nothing of the loop's inherited, and tied to its worker's life.
//!
//! The child, between `fork` and `exec` (async-signal-safe calls only):
//! 1. `setsid()`: its own session and process group, so a timeout kills the whole group;
//! 2. `prctl(PR_SET_PDEATHSIG, SIGKILL)`: it dies with the thread that started it (the worker), and
//!    exits at once if that worker already died between `fork` and `prctl`;
//! 3. every signal disposition back to `SIG_DFL` and an empty signal mask (the loop ignores SIGPIPE,
//!    SIGTTIN, SIGTTOU … and ignored dispositions survive `exec`);
//! 4. every descriptor above 2 marked close-on-exec (`close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`, or a
//!    loop up to `RLIMIT_NOFILE` on kernels without it), so porch gets stdin, stdout and stderr only.
//!
//! stdin is `/dev/null`; stdout and stderr are the descriptors the caller passes (dup'ed, the caller
//! keeps its own).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::CoreError;

/// What to run: program path, full argv (argv\[0\] included) and the whole environment.
pub struct SpawnSpec<'a> {
    pub program: &'a Path,
    pub argv: &'a [OsString],
    pub env: &'a [(OsString, OsString)],
    pub stdout: RawFd,
    pub stderr: RawFd,
}

/// Start the program described by `spec`; returns its pid (the caller waits for it).
pub fn spawn(spec: &SpawnSpec<'_>) -> Result<u32, CoreError> {
    let stdout = dup_fd(spec.stdout, spec.program)?;
    let stderr = dup_fd(spec.stderr, spec.program)?;
    let mut cmd = Command::new(spec.program);
    if let Some((arg0, rest)) = spec.argv.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    // SAFETY: getpid is async-signal-safe; the value is read before fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (setsid, prctl, getppid, raise, sigaction, sigprocmask, syscall, getrlimit, fcntl).
    unsafe {
        cmd.pre_exec(move || child_setup(parent));
    }
    let child = cmd
        .spawn()
        .map_err(|e| CoreError::io(&e, "spawn", spec.program))?;
    Ok(child.id())
}

fn dup_fd(fd: RawFd, program: &Path) -> Result<File, CoreError> {
    // SAFETY: the caller guarantees `fd` is open for the duration of this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed
        .try_clone_to_owned()
        .map_err(|e| CoreError::io(&e, "dup", program))?;
    Ok(File::from(owned))
}

/// Runs in the child between fork and exec.
fn child_setup(parent: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: plain syscalls on the child's own process state.
    unsafe {
        if libc::setsid() < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            libc::raise(libc::SIGKILL); // the worker died before prctl took effect
        }
        default_signals();
        cloexec_above_stderr();
    }
    Ok(())
}

/// The kernel's `struct sigaction` (glibc's wrapper refuses signals 32 and 33, which it reserves).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Every catchable signal back to its default action, none blocked.
unsafe fn default_signals() {
    let action = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &action as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
}

/// Mark every descriptor above 2 close-on-exec.
unsafe fn cloexec_above_stderr() {
    let flags = libc::CLOSE_RANGE_CLOEXEC as libc::c_int;
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, flags) == 0 {
        return;
    }
    let mut lim: libc::rlimit = std::mem::zeroed();
    let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
        lim.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        4096
    };
    for fd in 3..max {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    fn run(script: &str) -> String {
        let (mut r, w) = std::io::pipe().expect("pipe");
        let argv: Vec<OsString> = ["sh", "-c", script].iter().map(OsString::from).collect();
        let env = vec![(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))];
        let spec = SpawnSpec {
            program: Path::new("/bin/sh"),
            argv: &argv,
            env: &env,
            stdout: w.as_raw_fd(),
            stderr: w.as_raw_fd(),
        };
        let pid = spawn(&spec).expect("spawn");
        drop(w);
        let mut out = String::new();
        r.read_to_string(&mut out).expect("read");
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        out
    }

    #[test]
    fn only_stdio_is_inherited() {
        // A descriptor without CLOEXEC in the parent must not reach the child.
        let null = std::fs::File::open("/dev/null").expect("open");
        // SAFETY: F_DUPFD makes an inheritable copy at 200 or above, closed below.
        let leaky = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD, 200) };
        assert!(leaky >= 200);
        let fds = run("ls /proc/self/fd");
        // SAFETY: closing the descriptor made above.
        unsafe { libc::close(leaky) };
        let got: Vec<i32> = fds
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        assert!(!got.contains(&leaky), "{got:?}");
        assert!(got.iter().filter(|&&fd| fd > 2).count() <= 1, "{got:?}"); // ls's own directory fd
    }

    #[test]
    fn new_session_and_default_signals() {
        let out = run(
            "cat /proc/$$/stat; echo; grep -E '^(SigIgn|SigBlk)' /proc/self/status; echo pid=$$",
        );
        let stat = out.lines().next().unwrap_or_default().to_string();
        let after: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let pid = out
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("pid=")
            .to_string();
        // After ")": state ppid pgrp session; the shell leads its own session and group.
        assert_eq!(after.get(2).copied(), Some(pid.as_str()), "{out}");
        assert_eq!(after.get(3).copied(), Some(pid.as_str()), "{out}");
        assert!(out.contains("SigIgn:\t0000000000000000"), "{out}");
        assert!(out.contains("SigBlk:\t0000000000000000"), "{out}");
    }

    #[test]
    fn missing_program_is_an_error_with_the_path() {
        let argv = vec![OsString::from("nope")];
        let spec = SpawnSpec {
            program: Path::new("/nonexistent/porch"),
            argv: &argv,
            env: &[],
            stdout: 1,
            stderr: 2,
        };
        let err = spawn(&spec).expect_err("must fail");
        assert_eq!(err.errno, libc::ENOENT);
        assert_eq!(err.filename, OsString::from("/nonexistent/porch"));
    }
}
