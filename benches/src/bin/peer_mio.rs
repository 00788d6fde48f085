//! The no-framework reference: a single-threaded `mio` server written by
//! hand, echo or HTTP plaintext. Reads until the socket is drained, answers
//! at once, buffers only what the socket refuses.

use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use shardloop_benches::{complete_requests, HTTP_RESPONSE};
use slab::Slab;
use std::io::{self, Read, Write};

#[derive(Parser)]
struct Args {
    /// echo or http
    #[arg(long, default_value = "echo")]
    mode: String,
    #[arg(long, default_value_t = 0)]
    port: u16,
}

struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
}

const LISTENER: Token = Token(usize::MAX);

fn main() -> io::Result<()> {
    let args = Args::parse();
    let http = match args.mode.as_str() {
        "echo" => false,
        "http" => true,
        m => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown mode {m}"),
            ))
        }
    };
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(([127, 0, 0, 1], args.port).into())?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!(
        "peer_mio {} listening on {}",
        args.mode,
        listener.local_addr()?
    );
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true)?;
                            let e = conns.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(e.key()),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            e.insert(Conn {
                                stream,
                                inbuf: Vec::new(),
                                out: Vec::new(),
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            let mut closed = false;
            if ev.is_readable() {
                loop {
                    match c.stream.read(&mut buf) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => {
                            if http {
                                c.inbuf.extend_from_slice(&buf[..n]);
                                match complete_requests(&c.inbuf) {
                                    Some((k, used)) => {
                                        for _ in 0..k {
                                            c.out.extend_from_slice(HTTP_RESPONSE);
                                        }
                                        c.inbuf.drain(..used);
                                    }
                                    None => {
                                        closed = true;
                                        break;
                                    }
                                }
                            } else {
                                c.out.extend_from_slice(&buf[..n]);
                            }
                            if n < buf.len() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
            if !closed && !c.out.is_empty() {
                match c.stream.write(&c.out) {
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => closed = true,
                }
            }
            if closed {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
}
