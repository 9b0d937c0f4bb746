//! A small fnmatch-style matcher for base names: `*`, `?`, `[abc]`, `[a-z]`, `[!a]` / `[^a]`.
//! `*` and `?` match any character including `.` (the watcher drops hidden names separately).
//! An unclosed `[` matches a literal `[`.

/// Does `name` match the glob `pat`?
pub fn fnmatch(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Position after the last `*` in the pattern and the name index it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                '?' => Some(pi + 1),
                '[' => match class(&p, pi, n[ni]) {
                    Some((true, next)) => Some(next),
                    Some((false, _)) => None,
                    None if n[ni] == '[' => Some(pi + 1),
                    None => None,
                },
                c if c == n[ni] => Some(pi + 1),
                _ => None,
            }
        } else {
            None
        };
        match step {
            Some(next) => {
                pi = next;
                ni += 1;
            }
            None => match star {
                // Let the last `*` swallow one more character and retry.
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    pi = sp;
                    ni = sn + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Match `c` against the bracket class starting at `p[start] == '['`.
/// Returns (matched, index after `]`), or None when the class is not closed.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            let hi = p[i + 2];
            if ch <= c && c <= hi {
                matched = true;
            }
            i += 3;
        } else {
            if ch == c {
                matched = true;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn basics() {
        assert!(fnmatch("intent-*.json", "intent-a.json"));
        assert!(fnmatch("intent-*.json", "intent-.json"));
        assert!(!fnmatch("intent-*.json", "intent-a.json.tmp"));
        assert!(!fnmatch("intent-*.json", "xintent-a.json"));
        assert!(fnmatch("*", "anything"));
        assert!(fnmatch("*", ""));
        assert!(fnmatch("a?c", "abc"));
        assert!(fnmatch("a?c", "aéc"));
        assert!(!fnmatch("a?c", "ac"));
        assert!(fnmatch("*.js*", "x.json"));
        assert!(fnmatch("a*b*c", "aXXbYYbZc"));
        assert!(!fnmatch("a*b*c", "aXXbYY"));
    }

    #[test]
    fn classes() {
        assert!(fnmatch("f[0-9].txt", "f7.txt"));
        assert!(!fnmatch("f[0-9].txt", "fa.txt"));
        assert!(fnmatch("f[!0-9].txt", "fa.txt"));
        assert!(fnmatch("f[^0-9].txt", "fa.txt"));
        assert!(fnmatch("f[]x]", "f]"));
        assert!(fnmatch("f[a-]", "f-"));
        assert!(fnmatch("f[", "f["));
        assert!(!fnmatch("f[", "fa"));
    }
}
