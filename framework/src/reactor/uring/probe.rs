//! Whether this kernel, in this sandbox, gives the completion backend what
//! it uses: checked once at start, so a server asked for io_uring on a
//! machine without it runs on epoll and says, in one line, what was
//! missing (the sysctl that disables it, a seccomp filter refusing the
//! ring, or an opcode an older kernel lacks).

use io_uring::{opcode, IoUring, Probe};
use std::fmt;

/// Where the kernel says whether io_uring may be used (Linux 6.6+): 0
/// for everyone, 1 only for members of `io_uring_group` (and
/// privileged processes), 2 for nobody.
const DISABLED_SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";

/// The operations the backend submits, by name.
const NEEDED: &[(u8, &str)] = &[
    // Multishot receive into provided buffers (RECV with the multishot
    // flag and buffer selection: 6.0, with SEND_ZC).
    (opcode::RecvMulti::CODE, "RECV"),
    (opcode::SendZc::CODE, "SEND_ZC"),
    (opcode::SendMsg::CODE, "SENDMSG"),
    (opcode::Writev::CODE, "WRITEV"),
    (opcode::AcceptMulti::CODE, "ACCEPT"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    (opcode::PollAdd::CODE, "POLL_ADD"),
    (opcode::Shutdown::CODE, "SHUTDOWN"),
    (opcode::Close::CODE, "CLOSE"),
];

/// What the backend uses where the kernel has it, and does without
/// where it does not (found by the same probe, once per process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Features {
    /// `IORING_OP_SENDMSG_ZC` (6.1): zero-copy sends.
    pub(crate) send_msg_zc: bool,
    /// `IOU_PBUF_RING_INC` (6.12): receive buffers consumed a piece at a
    /// time.
    pub(crate) incremental_buffers: bool,
}

/// What is missing for the completion backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing(pub(crate) String);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that io_uring can be used here with everything the backend
/// needs: the sysctl, a ring (a sandbox may refuse the syscall), each
/// opcode, and a provided-buffer ring (5.19). Asked once per process; the
/// rings are tried on a thread of their own, since a thread that used
/// io_uring keeps the kernel's io_uring context, whose later
/// notifications interrupt its blocking socket calls that have a timeout
/// (EINTR): the caller's thread (an application's, a test's) is left as
/// it was.
pub(crate) fn probe() -> Result<Features, Missing> {
    static ANSWER: std::sync::OnceLock<Result<Features, Missing>> = std::sync::OnceLock::new();
    ANSWER
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("shardloop-uring-probe".into())
                .spawn(try_rings)
                .map_err(|e| Missing(format!("cannot start the probe's thread: {e}")))
                .and_then(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(Missing("the probe panicked".into())))
                })
        })
        .clone()
}

fn try_rings() -> Result<Features, Missing> {
    // Older kernels have no such switch: io_uring is on.
    if let Ok(v) = std::fs::read_to_string(DISABLED_SYSCTL) {
        disabled_by_sysctl(v.trim())?;
    }
    let ring = IoUring::new(8).map_err(|e| {
        Missing(format!(
            "io_uring_setup failed ({e}): refused by the kernel or a sandbox"
        ))
    })?;
    let mut ops = Probe::new();
    ring.submitter().register_probe(&mut ops).map_err(|e| {
        Missing(format!(
            "the kernel cannot list its io_uring opcodes ({e}): older than 5.6"
        ))
    })?;
    let absent: Vec<&str> = NEEDED
        .iter()
        .filter(|(code, _)| !ops.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    if !absent.is_empty() {
        return Err(Missing(format!(
            "the kernel lacks the io_uring opcodes {}",
            absent.join(", ")
        )));
    }
    use super::buf_ring::BufRing;
    let mut kernel = super::kernel::Kernel::Ring(ring);
    BufRing::new(&mut kernel, 0, 2, 64, false)
        .map(|b| b.release(&mut kernel))
        .map_err(|e| Missing(format!("no provided-buffer rings ({e}): older than 5.19")))?;
    // A kernel without incremental consumption refuses the flag (EINVAL).
    let incremental_buffers = BufRing::new(&mut kernel, 1, 2, 64, true)
        .map(|b| b.release(&mut kernel))
        .is_ok();
    Ok(Features {
        send_msg_zc: ops.is_supported(opcode::SendMsgZc::CODE),
        incremental_buffers,
    })
}

/// The sysctl's value as a refusal, when it refuses this process.
fn disabled_by_sysctl(value: &str) -> Result<(), Missing> {
    match value {
        "0" | "" => Ok(()),
        // Only for members of kernel.io_uring_group: the ring's own setup
        // says whether this process is one.
        "1" => Ok(()),
        v => Err(Missing(format!(
            "io_uring is disabled ({DISABLED_SYSCTL} = {v})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sysctl_refuses_only_when_set_to_two() {
        assert_eq!(disabled_by_sysctl("0"), Ok(()));
        assert_eq!(disabled_by_sysctl("1"), Ok(()));
        let refused = disabled_by_sysctl("2").unwrap_err();
        assert!(refused.0.contains("io_uring_disabled = 2"), "{refused}");
    }

    #[test]
    fn the_probe_answers_and_a_refusal_names_what_is_missing() {
        match probe() {
            Ok(features) => {
                // Then every opcode listed is there and a ring opens.
                let ring = IoUring::new(4).expect("a ring, as the probe found");
                let mut ops = Probe::new();
                ring.submitter().register_probe(&mut ops).unwrap();
                assert!(NEEDED.iter().all(|(code, _)| ops.is_supported(*code)));
                // And the optional features are as it says.
                assert_eq!(
                    ops.is_supported(opcode::SendMsgZc::CODE),
                    features.send_msg_zc
                );
                let mut kernel = super::super::kernel::Kernel::Ring(ring);
                let inc = super::super::buf_ring::BufRing::new(&mut kernel, 0, 2, 64, true);
                assert_eq!(inc.is_ok(), features.incremental_buffers);
                if let Ok(b) = inc {
                    b.release(&mut kernel);
                }
            }
            Err(m) => {
                println!("io_uring unusable here: {m}");
                assert!(
                    ["disabled", "io_uring_setup", "opcodes", "provided-buffer"]
                        .iter()
                        .any(|w| m.0.contains(w)),
                    "{m}"
                );
            }
        }
    }
}
