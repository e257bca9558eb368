//! The server process: `sh -c 'exec COMMAND'` in a process group of its own, its output in
//! the log file, dying with rlmec, and stopped with everything it started.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::ServeError;
use super::groups::{self, Slot};

pub struct ServerProcess {
    child: Child,
    slot: Slot,
    /// How long a stop waits after SIGTERM before SIGKILL.
    grace: Duration,
    /// Set once stopped and reaped.
    status: Option<ExitStatus>,
}

impl ServerProcess {
    /// Starts `command` through `sh` (so templates may quote and redirect), which `exec`s
    /// it: the server itself leads the new group and gets the signals. Its output goes to
    /// `log`.
    ///
    /// The server gets SIGTERM when the thread that spawned it ends (the kernel's
    /// parent-death signal follows the thread, not the process): start servers from a
    /// thread that outlives them, as rlmec's script thread does.
    pub fn spawn(command: &str, log: File, grace: Duration) -> io::Result<Self> {
        let stderr = log.try_clone()?;
        let parent = std::process::id() as libc::pid_t;
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(format!("exec {command}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        // SAFETY: between fork and exec the closure only makes two system calls and
        // allocates nothing.
        unsafe {
            shell.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // rlmec died before the signal was asked for: it would never come.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = shell.spawn()?;
        let slot = groups::register(child.id() as i32);
        Ok(Self {
            child,
            slot,
            grace,
            status: None,
        })
    }

    /// The server's pid, which is also its process group's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server has exited (it stays unreaped until [`Self::stop`]).
    pub fn has_exited(&self) -> bool {
        self.status.is_some() || groups::leader_exited(self.pid() as i32)
    }

    /// Stops the server's whole group ([`groups::terminate`]) and reaps the server; after
    /// the first call it only returns the status again.
    pub fn stop(&mut self) -> Result<ExitStatus, ServeError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let pid = self.pid();
        groups::terminate(&[pid as i32], self.grace);
        groups::unregister(&mut self.slot);
        let status = self
            .child
            .wait()
            .map_err(|source| ServeError::Reap { pid, source })?;
        tracing::info!("server {pid} stopped ({status})");
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("{e}");
        }
    }
}
