//! Redis's own rules, where resp_kv implements a command: integer parsing
//! (`string2ll`), SET's options and their errors, and the text of the
//! unknown-command error, so replies match `redis-server` (7.x) byte for byte.

/// Redis's `string2ll`: an optional `-`, then digits with no leading zero
/// (except `0` itself), no `+`, no blanks, no `-0`, in `i64` range.
pub fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, s),
    };
    // The first digit must be 1-9: no leading zero, no "-0".
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            return None;
        }
        Some((v as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(v).ok()
    }
}

/// What SET does to the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No expiry (a plain SET clears any previous one).
    Persist,
    /// KEEPTTL: keep whatever the key had.
    Keep,
    /// Expire at this Unix time, in milliseconds.
    AtMs(i64),
}

/// SET's options, parsed and validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetOptions {
    pub nx: bool,
    pub xx: bool,
    pub get: bool,
    pub expiry: Expiry,
}

pub const SYNTAX_ERROR: &[u8] = b"-ERR syntax error\r\n";
const NOT_INTEGER: &[u8] = b"-ERR value is not an integer or out of range\r\n";
const INVALID_EXPIRE: &[u8] = b"-ERR invalid expire time in 'set' command\r\n";

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Seconds,
    Millis,
}

/// Parses `SET key value [options...]`'s options as Redis 7 does: all
/// option syntax first (`-ERR syntax error`), then the expire value
/// (`not an integer` / `invalid expire time`). `now_ms` is the Unix time.
pub fn parse_set_options(opts: &[Vec<u8>], now_ms: i64) -> Result<SetOptions, &'static [u8]> {
    let mut o = SetOptions {
        nx: false,
        xx: false,
        get: false,
        expiry: Expiry::Persist,
    };
    let mut expire: Option<(&[u8], Unit, bool)> = None; // value, unit, absolute
    let mut keep_ttl = false;
    let mut i = 0;
    while i < opts.len() {
        let a = opts[i].to_ascii_uppercase();
        let next = opts.get(i + 1);
        match a.as_slice() {
            b"NX" if !o.xx => o.nx = true,
            b"XX" if !o.nx => o.xx = true,
            b"GET" => o.get = true,
            b"KEEPTTL" if expire.is_none() => keep_ttl = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT"
                if !keep_ttl && expire.is_none() && next.is_some() =>
            {
                let unit = if a.starts_with(b"P") {
                    Unit::Millis
                } else {
                    Unit::Seconds
                };
                expire = Some((next.expect("checked"), unit, a.ends_with(b"AT")));
                i += 1;
            }
            _ => return Err(SYNTAX_ERROR),
        }
        i += 1;
    }
    if keep_ttl {
        o.expiry = Expiry::Keep;
    }
    if let Some((value, unit, absolute)) = expire {
        let n = string2ll(value).ok_or(NOT_INTEGER)?;
        if n <= 0 {
            return Err(INVALID_EXPIRE);
        }
        let ms = match unit {
            Unit::Millis => n,
            Unit::Seconds => n.checked_mul(1000).ok_or(INVALID_EXPIRE)?,
        };
        let at = if absolute {
            ms
        } else {
            ms.checked_add(now_ms).ok_or(INVALID_EXPIRE)?
        };
        o.expiry = Expiry::AtMs(at);
    }
    Ok(o)
}

/// `-ERR unknown command '<name>', with args beginning with: '<a>' '<b>' `,
/// as Redis formats it (arguments shown while under 128 bytes, newlines
/// turned into spaces).
pub fn unknown_command(args: &[Vec<u8>]) -> Vec<u8> {
    let name = &args[0][..args[0].len().min(128)];
    let mut shown = Vec::new();
    for a in &args[1..] {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        shown.push(b'\'');
        shown.extend_from_slice(&a[..a.len().min(room)]);
        shown.extend_from_slice(b"' ");
    }
    let mut out = b"-ERR unknown command '".to_vec();
    out.extend_from_slice(name);
    out.extend_from_slice(b"', with args beginning with: ");
    out.extend_from_slice(&shown);
    for b in &mut out[1..] {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Splits an inline command line as redis-server's `sdssplitargs` does:
/// blanks separate arguments; "double quotes" take `\n \r \t \b \a`,
/// `\xHH` and `\` before any other character; 'single quotes' take `\'`;
/// a closing quote must be followed by a blank or the end. `None` for
/// unbalanced quotes (Redis: "Protocol error: unbalanced quotes in
/// request"). Like the C original, a NUL byte ends the line.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    let at = |i: usize| line.get(i).copied();
    let blank = |b: Option<u8>| matches!(b, Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c));
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while blank(at(p)) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            let c = at(p);
            if inq {
                match c {
                    None => return None,
                    Some(b'\\') if at(p + 1) == Some(b'x') => {
                        match (at(p + 2).and_then(hex), at(p + 3).and_then(hex)) {
                            (Some(h), Some(l)) => {
                                cur.push(h * 16 + l);
                                p += 3;
                            }
                            _ => {
                                cur.push(b'x');
                                p += 1;
                            }
                        }
                    }
                    Some(b'\\') if at(p + 1).is_some() => {
                        p += 1;
                        cur.push(match line[p] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if at(p + 1).is_some() && !blank(at(p + 1)) {
                            return None;
                        }
                        p += 1;
                        break;
                    }
                    Some(b) => cur.push(b),
                }
            } else if insq {
                match c {
                    None => return None,
                    Some(b'\\') if at(p + 1) == Some(b'\'') => {
                        p += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if at(p + 1).is_some() && !blank(at(p + 1)) {
                            return None;
                        }
                        p += 1;
                        break;
                    }
                    Some(b) => cur.push(b),
                }
            } else {
                match c {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t') => {
                        p += 1;
                        break;
                    }
                    Some(b'"') => inq = true,
                    Some(b'\'') => insq = true,
                    Some(b) => cur.push(b),
                }
            }
            p += 1;
        }
        args.push(cur);
    }
}

/// redis-server 7's answer to DEBUG when `enable-debug-command` is off.
pub const DEBUG_NOT_ALLOWED: &[u8] = b"-ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.\r\n";
