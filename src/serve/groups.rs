//! The servers' process groups: stopping one (SIGTERM, a grace period, SIGKILL), the set
//! of those alive, and stopping them all when rlmec is interrupted (SIGINT, SIGTERM, SIGHUP).
//!
//! A server is its group's leader (its pid is the group id) and stays our unreaped child
//! until it is stopped: while its zombie exists the group id cannot be reused, so signals
//! sent to the group never reach an unrelated process. Its slot here is cleared before it
//! is reaped, for the same reason.
//!
//! [`terminate`] is what an explicit stop, `Drop` and the signal handler all do; it only
//! makes system calls (kill, waitid, clock_gettime, nanosleep) and allocates nothing, so the
//! handler may run it.

use std::sync::Once;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Servers alive at once that an interrupt stops (more still die with rlmec: the
/// parent-death signal).
const SLOTS: usize = 32;

/// How long an interrupted rlmec waits for its servers to stop before killing them.
const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

/// How often a stop looks whether the server has exited.
const STOP_POLL: Duration = Duration::from_millis(20);

/// The signals that stop the servers before rlmec ends.
const INTERRUPTS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Group ids of live servers; 0 marks a free slot.
static LIVE: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

/// A server's place in the live set; [`unregister`] frees it.
#[derive(Debug)]
pub struct Slot(Option<usize>);

/// Adds the group led by `pgid` to those an interrupt stops, installing the handler at the
/// first server.
pub fn register(pgid: i32) -> Slot {
    install_handlers();
    let free = LIVE.iter().position(|slot| {
        slot.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    if free.is_none() {
        tracing::warn!(
            "more than {SLOTS} servers at once: server {pgid} is not stopped on an interrupt (it still gets SIGTERM when rlmec exits)"
        );
    }
    Slot(free)
}

/// Removes a server from the live set; done before it is reaped.
pub fn unregister(slot: &mut Slot) {
    if let Some(i) = slot.0.take() {
        LIVE[i].store(0, Ordering::SeqCst);
    }
}

/// Stops the groups led by `pgids`: SIGTERM to each whole group, up to `grace` for their
/// leaders to exit, then SIGKILL to each group (whatever the leaders left behind). The
/// leaders are not reaped.
pub fn terminate(pgids: &[i32], grace: Duration) {
    for &pgid in pgids {
        signal_group(pgid, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while !pgids.iter().all(|&pgid| leader_exited(pgid)) && Instant::now() < deadline {
        std::thread::sleep(STOP_POLL);
    }
    for &pgid in pgids {
        signal_group(pgid, libc::SIGKILL);
    }
}

/// Whether our child `pid` has exited, without reaping it (so its group id stays ours).
/// A pid that is not our child counts as exited.
pub fn leader_exited(pid: i32) -> bool {
    // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child waitable.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let found = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // With WNOHANG, a child still running leaves si_pid 0.
    found == -1 || unsafe { info.si_pid() } != 0
}

fn signal_group(pgid: i32, signal: libc::c_int) {
    // SAFETY: kill only sends a signal; a group already gone gives ESRCH, ignored.
    unsafe { libc::kill(-pgid, signal) };
}

/// Handlers for [`INTERRUPTS`], each only where the signal still has its default action:
/// a signal rlmec was started ignoring (`nohup`, a background job's SIGINT) stays ignored,
/// and a handler someone else installed stays theirs.
fn install_handlers() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        for signal in INTERRUPTS {
            // SAFETY: sigaction with a zeroed (empty-mask) action whose handler is an
            // `extern "C" fn(c_int)`; the old action is only read.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction != libc::SIG_DFL
                {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as usize;
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
}

/// Stops every live server, then lets `signal` end rlmec as it would have without the
/// handler (so a shell sees 130 after Ctrl-C, 143 after SIGTERM, and a stage under way is
/// left marked as running, to be found interrupted).
extern "C" fn on_interrupt(signal: libc::c_int) {
    let mut pgids = [0; SLOTS];
    let mut n = 0;
    for slot in &LIVE {
        let pgid = slot.load(Ordering::SeqCst);
        if pgid != 0 {
            pgids[n] = pgid;
            n += 1;
        }
    }
    terminate(&pgids[..n], INTERRUPT_GRACE);
    // SAFETY: restores the default action; the signal, blocked while this handler runs, is
    // delivered again as soon as it returns.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}
