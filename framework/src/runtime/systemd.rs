//! Running under systemd: readiness notification (`sd_notify`'s
//! `READY=1` / `STOPPING=1` on `$NOTIFY_SOCKET`) and socket activation
//! (listening sockets passed as descriptors 3.. with `$LISTEN_FDS`).
//! Both are no-ops when systemd did not ask for them.

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
/// are removed so that children do not inherit them. `listenfd` adopts the
/// descriptors after checking each is a stream socket of the right family
/// (`SO_TYPE`, the bound address); one that is not listening
/// (`SO_ACCEPTCONN`) is refused here, naming its position.
pub(crate) fn take_listeners() -> std::io::Result<Vec<socket2::Socket>> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !for_us {
        return Ok(Vec::new());
    }
    let mut fds = listenfd::ListenFd::from_env();
    std::env::remove_var("LISTEN_FDNAMES");
    let mut out = Vec::with_capacity(fds.len());
    for i in 0..fds.len() {
        let socket: socket2::Socket = match fds.take_tcp_listener(i) {
            Ok(Some(l)) => l.into(),
            Ok(None) => continue,
            Err(_) => match fds.take_unix_listener(i)? {
                Some(l) => l.into(),
                None => continue,
            },
        };
        if !socket.is_listener()? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("passed socket {i} is not listening"),
            ));
        }
        out.push(socket);
    }
    Ok(out)
}
