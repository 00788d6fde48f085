//! The no-framework UDP reference: one thread, one blocking socket, a
//! `recvmmsg` of up to 16 datagrams, then one `sendmmsg` echoing them back.
//! The floor a UDP server's per-datagram cost can reach.

use clap::Parser;
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
}

const BATCH: usize = 16;
const SLOT: usize = 2048;

fn main() -> io::Result<()> {
    let args = Args::parse();
    let socket = UdpSocket::bind(("127.0.0.1", args.port))?;
    println!("peer_udp listening on {}", socket.local_addr()?);
    let fd = socket.as_raw_fd();
    let mut bufs = vec![0u8; BATCH * SLOT];
    let mut rx: MultiHeaders<SockaddrStorage> = MultiHeaders::preallocate(BATCH, None);
    let mut tx: MultiHeaders<SockaddrStorage> = MultiHeaders::preallocate(BATCH, None);
    loop {
        let mut got: Vec<(usize, SockaddrStorage)> = Vec::with_capacity(BATCH);
        {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs
                .chunks_mut(SLOT)
                .map(|b| [IoSliceMut::new(b)])
                .collect();
            let r = recvmmsg(
                fd,
                &mut rx,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            );
            match r {
                Ok(msgs) => {
                    for m in msgs {
                        if let Some(a) = m.address {
                            got.push((m.bytes, a));
                        }
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let slices: Vec<[IoSlice<'_>; 1]> = got
            .iter()
            .enumerate()
            .map(|(i, (n, _))| [IoSlice::new(&bufs[i * SLOT..i * SLOT + n])])
            .collect();
        let addrs: Vec<Option<SockaddrStorage>> = got.iter().map(|(_, a)| Some(*a)).collect();
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let _ = sendmmsg(
            fd,
            &mut tx,
            slices.iter(),
            &addrs,
            no_cmsgs,
            MsgFlags::empty(),
        );
    }
}
