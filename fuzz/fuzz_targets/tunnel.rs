//! Arbitrary bytes as a proxy's answer to the CONNECT and SOCKS5
//! handshakes, delivered whole, one byte at a time and in pseudo-random
//! reads with Pending in between.
//!
//! Invariants:
//! * no panic, no hang (a bounded number of polls), no lost wake-up;
//! * CONNECT: success only for a 2xx final head (after interim ones), and
//!   then the handshake has read exactly that head, nothing after it;
//! * SOCKS5: the outcome and the bytes read equal a reference parse of
//!   RFC 1928/1929 whatever the split: the handshake never reads past the
//!   proxy's reply.

#![no_main]

mod common;

use common::{Driver, ReadStream, Sizes, one_shot_final};
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::Ordering;
use smolreq::fuzzing::{Limits, http_connect, socks5_connect};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, answer)) = data.split_first() else { return };
    let seed = answer.iter().fold(answer.len() as u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let splits = || [Sizes::whole(), Sizes::fixed(1), Sizes::pseudo_random(seed, 300, 64)];
    if mode & 1 == 0 {
        let limits = if mode & 2 == 0 { Limits::default() } else { Limits { max_head_size: 200, ..Limits::default() } };
        let want = one_shot_final(answer, &limits);
        for (i, sizes) in splits().into_iter().enumerate() {
            let mut stream = ReadStream::new(answer, sizes).with_pending_every(if i == 2 { 3 } else { 0 });
            let delivered = stream.delivered();
            let got = Driver::new(4 * answer.len() + 64).block_on(http_connect(&mut stream, &limits));
            if got.is_ok() {
                let head = want.as_ref().expect("a tunnel opened on an answer that has no valid final head");
                assert!(head.status().is_success(), "a tunnel opened on {:?}", head.status());
                let len = final_head_len(answer, &limits);
                assert_eq!(delivered.load(Ordering::SeqCst), len, "read past the CONNECT answer");
            }
        }
    } else {
        let (name, password) = (mode & 2 != 0, mode & 4 != 0);
        let want = reference_socks(answer, password);
        for (i, sizes) in splits().into_iter().enumerate() {
            let mut stream = ReadStream::new(answer, sizes).with_pending_every(if i == 2 { 3 } else { 0 });
            let delivered = stream.delivered();
            let got = Driver::new(4 * answer.len() + 64).block_on(socks5_connect(&mut stream, name, password));
            let read = delivered.load(Ordering::SeqCst);
            match want {
                Some(len) => assert!(got.is_ok() && read == len, "split {i}: {got:?}, read {read} of reference {len}"),
                None => assert!(got.is_err(), "split {i}: accepted what the reference refuses: {answer:?}"),
            }
        }
    }
});

/// The length of the interim heads plus the final head of `data`.
fn final_head_len(data: &[u8], limits: &Limits) -> usize {
    let mut at = 0;
    loop {
        let (head, len) = smolreq::fuzzing::parse_response_head(&data[at..], limits).unwrap().unwrap();
        at += len;
        if !head.status().is_informational() {
            return at;
        }
    }
}

/// RFC 1928/1929 restated: the length of a successful handshake's answer.
fn reference_socks(a: &[u8], password: bool) -> Option<usize> {
    let mut at = 0;
    if a.len() < 2 || a[0] != 5 {
        return None;
    }
    match a[1] {
        0 => at += 2,
        2 if password => {
            at += 2;
            if a.get(at..at + 2)? != [1, 0] {
                return None;
            }
            at += 2;
        }
        _ => return None,
    }
    let reply = a.get(at..at + 4)?;
    if reply[0] != 5 || reply[1] != 0 {
        return None;
    }
    let addr = match reply[3] {
        1 => 4,
        4 => 16,
        3 => 1 + usize::from(*a.get(at + 4)?),
        _ => return None,
    };
    let len = at + 4 + addr + 2;
    (a.len() >= len).then_some(len)
}
