//! The one rule for shortening a file name that would be too long: [`fit_name`].
//!
//! Every name the loop derives (status files, error logs, conflict names, temp names) goes
//! through it, and Python calls it as `_core.fit_name`, so that there is exactly one spelling.

use sha2::{Digest, Sha256};

use crate::hash::to_hex;

/// Longest file name the kernel accepts (bytes).
pub const NAME_MAX: usize = 255;

/// Hex digits of the SHA-256 of the full name kept in a shortened name.
pub const HASH_DIGITS: usize = 16;

/// The UTF-8 text in `bytes`, with invalid sequences (and a character cut at the end) dropped:
/// what Python's `bytes.decode("utf-8", "ignore")` keeps.
fn utf8_only(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
    }
    out
}

/// `name + suffix` when it fits in `limit` bytes; otherwise a readable UTF-8 prefix of `name`,
/// `~`, the first 16 hex digits of SHA-256(`name`), then `suffix`. Two different long names never
/// map to the same result. `None` when `suffix` leaves no room for even one byte of `name`.
pub fn fit_name(name: &[u8], suffix: &[u8], limit: usize) -> Option<Vec<u8>> {
    if name.len() + suffix.len() <= limit {
        return Some([name, suffix].concat());
    }
    let digest = to_hex(&Sha256::digest(name));
    let tail_len = 1 + HASH_DIGITS + suffix.len();
    let room = limit.checked_sub(tail_len).filter(|&r| r >= 1)?;
    let mut out = utf8_only(&name[..room.min(name.len())]);
    out.push(b'~');
    out.extend_from_slice(&digest.as_bytes()[..HASH_DIGITS]);
    out.extend_from_slice(suffix);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(name: &str, suffix: &str, limit: usize) -> Option<String> {
        fit_name(name.as_bytes(), suffix.as_bytes(), limit).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn short_names_unchanged() {
        assert_eq!(
            fit("intent-a.json", ".status", NAME_MAX).unwrap(),
            "intent-a.json.status"
        );
        assert_eq!(fit("", "", 0).unwrap(), "");
        let exact = "a".repeat(250);
        assert_eq!(fit(&exact, ".json", NAME_MAX).unwrap().len(), 255);
    }

    #[test]
    fn long_names_cut_with_hash() {
        let name = "a".repeat(300);
        let got = fit(&name, ".status", NAME_MAX).unwrap();
        assert_eq!(got.len(), NAME_MAX);
        let hex = to_hex(&Sha256::digest(name.as_bytes()));
        let want = format!("{}~{}.status", "a".repeat(255 - 17 - 7), &hex[..16]);
        assert_eq!(got, want);
        // a different long name with the same prefix maps elsewhere
        let other = format!("{}b", "a".repeat(299));
        assert_ne!(fit(&other, ".status", NAME_MAX).unwrap(), got);
    }

    #[test]
    fn multibyte_prefix_stays_valid_utf8() {
        let name = "é".repeat(200); // 400 bytes
        for limit in [20, 21, 22, 100, 255] {
            let got = fit(&name, ".x", limit).unwrap();
            assert!(got.len() <= limit, "{limit}: {}", got.len());
            assert!(got.starts_with('é') || limit < 21, "{got}");
            assert!(got.ends_with(".x"));
        }
        // room for one byte only: the cut character is dropped, the tag stays
        let got = fit(&name, "", 18).unwrap();
        assert_eq!(got.len(), 17);
        assert!(got.starts_with('~'));
    }

    #[test]
    fn invalid_utf8_dropped_from_prefix() {
        let mut name = b"ab\xffcd".to_vec();
        name.extend_from_slice(&[b'x'; 300]);
        let got = fit_name(&name, b"", 30).unwrap();
        assert!(got.starts_with(b"abcd"));
        assert_eq!(got.len(), 29); // 13 bytes of room, one of them invalid
        assert!(std::str::from_utf8(&got).is_ok());
    }

    #[test]
    fn no_room() {
        assert_eq!(fit("aaaaaaaaaaaaaaaaaaaaaaaaa", "", 17), None);
        assert_eq!(fit("aaaaaaaaaaaaaaaaaaaaaaaaa", "", 5), None);
        assert!(fit("aaaaaaaaaaaaaaaaaaaaaaaaa", "", 18).is_some());
        let long_suffix = "s".repeat(250);
        assert_eq!(fit("name-that-is-long", &long_suffix, NAME_MAX), None);
    }
}
