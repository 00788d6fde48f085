//! Running under systemd: readiness notification (`sd_notify`'s
//! `READY=1` / `STOPPING=1` on `$NOTIFY_SOCKET`) and socket activation
//! (listening sockets passed as descriptors 3.. with `$LISTEN_FDS`).
//! Both are no-ops when systemd did not ask for them.

use std::os::fd::{FromRawFd, OwnedFd};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// Sends `state` (e.g. `READY=1`) to systemd, if it is listening.
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = (|| -> std::io::Result<()> {
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            socket.send_to(state.as_bytes(), std::path::Path::new(&path))?;
        }
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!(error = %e, state, "cannot notify systemd");
    }
}

/// The listening sockets systemd passed to this process, in order; empty
/// unless `$LISTEN_PID` is this process. Each is taken once: the variables
/// are removed so that children do not inherit them.
pub(crate) fn take_listen_fds() -> Vec<OwnedFd> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| (0..=1024).contains(n))
        .unwrap_or(0);
    if !for_us || n == 0 {
        return Vec::new();
    }
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    (LISTEN_FDS_START..LISTEN_FDS_START + n)
        .map(adopt)
        .collect()
}

/// Takes ownership of an inherited descriptor.
#[allow(unsafe_code)]
fn adopt(fd: i32) -> OwnedFd {
    // SAFETY: systemd's socket-activation protocol hands this process the
    // descriptors LISTEN_FDS_START .. LISTEN_FDS_START + LISTEN_FDS, open,
    // and LISTEN_PID says they are meant for us. Nothing else in this
    // process owns them (we take them once, at build, and clear the
    // variables), so the OwnedFd is their only owner. std offers no safe
    // way to adopt an inherited descriptor. Exercised by
    // tests/systemd.rs under `systemd-socket-activate`.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
