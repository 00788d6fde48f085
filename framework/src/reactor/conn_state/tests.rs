//! The state machine's transitions one by one (the property test in
//! `testing/conn_machine.rs` drives them through the shard).

use super::*;

#[test]
fn graceful_close_walks_open_closing_lingering() {
    let mut s = ConnState::inbound();
    assert!(s.accepts_output() && s.wants_input() && !s.is_closing());
    assert!(s.begin_closing());
    assert!(!s.begin_closing(), "once");
    assert!(
        s.is(Phase::Closing) && s.accepts_output(),
        "a close flushes what was written"
    );
    s.fin_sent();
    assert!(!s.accepts_output());
    s.linger();
    assert_eq!(s.check(), Ok(()));
}

#[test]
fn an_abort_blocks_a_later_close_and_output() {
    let mut s = ConnState::inbound();
    assert!(s.request_abort());
    assert!(!s.request_abort());
    assert!(!s.begin_closing());
    assert!(!s.accepts_output() && s.is_closing());
    assert!(!s.request_half_close());
}

#[test]
fn a_half_close_shuts_output_but_keeps_reading() {
    let mut s = ConnState::inbound();
    assert!(s.request_half_close());
    assert!(!s.request_half_close());
    assert!(!s.accepts_output() && s.wants_input() && !s.is_closing());
    s.fin_sent();
    assert!(s.begin_closing(), "the protocol closes later");
}

#[test]
fn pausing_again_forgets_an_unreported_resume() {
    let mut s = ConnState::inbound();
    assert!(!s.resume_reading(), "not paused");
    s.pause_reading();
    assert!(!s.wants_input());
    assert!(s.resume_reading());
    s.pause_reading();
    assert!(!s.take_resumed());
    assert!(s.resume_reading());
    assert!(s.take_resumed() && !s.take_resumed());
}

#[test]
fn outbound_connects_then_opens() {
    let mut s = ConnState::outbound();
    assert!(s.is(Phase::Connecting) && !s.accepts_output());
    assert!(!s.begin_closing() && !s.start_backpressure());
    s.connected();
    s.made();
    assert!(s.is_made() && s.is_outbound() && s.accepts_output());
}

#[test]
fn a_failed_layer_shuts_output_and_closes() {
    let mut s = ConnState::inbound();
    assert!(s.layer_failed());
    assert!(s.is(Phase::Closing) && !s.accepts_output() && s.has_layer_failed());
}

#[test]
fn the_check_names_a_broken_invariant() {
    let s = ConnState {
        phase: Phase::Lingering,
        bits: OUT_SHUT,
    };
    assert_eq!(s.check(), Err("lingering before FIN"));
    let s = ConnState {
        phase: Phase::Open,
        bits: FIN_SENT,
    };
    assert_eq!(s.check(), Err("FIN sent but output accepted"));
}
