//! A connection written as one `async fn` (`Conn::spawn_stream`): the task
//! reads with `read`, `read_exact`, `read_line` and `next_frame`, over real
//! sockets and through the testing kit.

use crate::common::*;
use shardloop::framing::LengthPrefixedDecoder;
use shardloop::framing::PrefixWidth;
use shardloop::task::sleep;
use shardloop::testing::FakeTransport;
use shardloop::{Conn, Protocol};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

/// Echo written as a task: read until EOF, write back, close.
struct TaskEcho;
impl Protocol for TaskEcho {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.spawn_stream(|task| async move {
            let mut buf = [0u8; 1000];
            let mut more = Vec::new();
            // read and read_buf in turn: both see every byte, in order.
            loop {
                let n = match task.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                task.write(&buf[..n]);
                match task.read_buf(&mut more).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => task.write(&more),
                }
                more.clear();
            }
            task.close();
        });
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {
        panic!("the task reads this connection");
    }
}

#[test]
fn a_task_echoes_every_byte_and_sees_the_half_close() {
    init_tracing();
    let (h, addr) = started(builder(2).listen("127.0.0.1:0", |_| |_| TaskEcho));
    let mut s = connect(addr);
    let sent: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let writer = {
        let mut w = s.try_clone().unwrap();
        let sent = sent.clone();
        std::thread::spawn(move || {
            for chunk in sent.chunks(7919) {
                w.write_all(chunk).unwrap();
            }
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), sent.len());
    assert!(back == sent, "bytes differ");
    h.shutdown();
}

/// Lines, then frames, then exact reads from one task, in that order.
struct Mixed;
impl Protocol for Mixed {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.spawn_stream(|task| async move {
            let greeting = task.read_line(64).await.unwrap().unwrap();
            task.write(&[b"hello ".as_slice(), &greeting, b"\n"].concat());
            let frames = LengthPrefixedDecoder::new(PrefixWidth::U16, 1024);
            let frame = task.next_frame(&frames).await.unwrap().unwrap();
            task.write(&[b"frame ".as_slice(), &frame, b"\n"].concat());
            let mut four = [0u8; 4];
            task.read_exact(&mut four).await.unwrap();
            task.write(&[b"exact ".as_slice(), &four, b"\n"].concat());
            // The peer ends mid-line: an error, not a line.
            let cut = task.read_line(64).await;
            let what = match cut {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => "cut",
                _ => "wrong",
            };
            task.write(format!("{what}\n").as_bytes());
            task.close();
        });
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn lines_frames_and_exact_reads_split_anywhere() {
    let input = [b"bob\r\n".as_slice(), &[0, 3], b"abc", b"wxyz", b"partial"].concat();
    // Every split point, through the testing kit (no sockets).
    for split in 0..=input.len() {
        let mut t = FakeTransport::new(Mixed);
        t.receive(&input[..split]);
        t.advance(Duration::ZERO);
        t.receive(&input[split..]);
        t.advance(Duration::ZERO);
        t.peer_close();
        t.advance(Duration::ZERO);
        assert_eq!(
            t.take_written(),
            b"hello bob\nframe abc\nexact wxyz\ncut\n",
            "split at {split}"
        );
    }
}

/// A task that does not read for a second.
struct Sleepy;
impl Protocol for Sleepy {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.spawn_stream(|task| async move {
            sleep(Duration::from_secs(1)).await;
            let mut total = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            while total < 3 << 20 {
                match task.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            task.write(format!("{total}\n").as_bytes());
        });
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn a_task_that_lags_pauses_reading_and_resumes_when_it_catches_up() {
    let mut t = FakeTransport::new(Sleepy);
    let chunk = vec![7u8; 256 * 1024];
    for _ in 0..12 {
        t.receive(&chunk);
    }
    t.advance(Duration::ZERO);
    assert!(
        t.is_reading_paused(),
        "3 MiB waiting for a task that does not read: the socket must pause"
    );
    t.advance(Duration::from_secs(1));
    t.advance(Duration::ZERO);
    assert!(!t.is_reading_paused(), "the task caught up");
    assert_eq!(t.take_written(), format!("{}\n", 3 << 20).as_bytes());
}

/// Reads from a task started with `spawn`: its input goes to data_received.
struct NotRouted(Vec<u8>);
impl Protocol for NotRouted {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.spawn(|task| async move {
            let mut buf = [0u8; 8];
            let e = task.read(&mut buf).await.unwrap_err();
            task.write(format!("{:?}\n", e.kind()).as_bytes());
        });
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, data: &[u8]) {
        self.0.extend_from_slice(data);
    }
}

#[test]
fn reading_a_connection_whose_input_goes_to_the_protocol_is_refused() {
    let mut t = FakeTransport::new(NotRouted(Vec::new()));
    t.receive(b"abc");
    t.advance(Duration::ZERO);
    assert_eq!(t.take_written(), b"Unsupported\n");
    assert_eq!(t.protocol().unwrap().0, b"abc");
}
