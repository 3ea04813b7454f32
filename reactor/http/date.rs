//! The `Date` header, rendered at most once a second.
//!
//! Every response carries `Date` (RFC 9110 §6.6.1), in IMF-fixdate form:
//! `Sun, 06 Nov 1994 08:49:37 GMT`. Formatting it for each response would cost more than the
//! rest of a small response's head, so the text is cached with the loop time at which the
//! wall-clock second changes; until then the cache is used as it is. The loop's cached `now`
//! makes the check free.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The length of an IMF-fixdate.
pub const DATE_LEN: usize = 29;

/// The rendered `Date` value and the loop time until which it is right.
pub(crate) struct DateCache {
    text: [u8; DATE_LEN],
    valid_until: Option<Instant>,
}

impl DateCache {
    pub(crate) fn new() -> Self {
        DateCache { text: [b' '; DATE_LEN], valid_until: None }
    }

    /// The date for loop time `now`.
    pub(crate) fn get(&mut self, now: Instant) -> &[u8; DATE_LEN] {
        if self.valid_until.is_none_or(|until| now >= until) {
            self.refresh(now);
        }
        &self.text
    }

    /// Renders the date again. Out of line and cold: `get` runs for every response and
    /// this once a second, so `get` stays a compare and a return, without the stack frame
    /// the formatting needs.
    #[cold]
    #[inline(never)]
    fn refresh(&mut self, now: Instant) {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.text = imf_fixdate(since_epoch.as_secs());
        let to_next_second =
            Duration::from_secs(1) - Duration::from_nanos(since_epoch.subsec_nanos().into());
        self.valid_until = Some(now + to_next_second);
    }
}

/// Formats seconds since the Unix epoch as an IMF-fixdate.
pub fn imf_fixdate(secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days);
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[month as usize - 1]);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], hour);
    two_digits(&mut out[20..22], minute);
    two_digits(&mut out[23..25], second);
    out
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) in the proleptic Gregorian calendar:
/// Howard Hinnant's `civil_from_days`, for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&imf_fixdate(1_795_391_999), b"Sun, 22 Nov 2026 23:59:59 GMT");
    }
}
