//! The settle rule as plain state: which names have been quiet long enough to be handed out.
//!
//! A [`Coalescer`] has no I/O and no clock: the watcher threads translate what they see into
//! [`Kind`]s and pass the time in, so the rule is tested from tables with a made-up clock.
//!
//! A name is *armed* by a close after writing or by arriving (rename in; for the poll watcher a
//! new or changed signature), and *disarmed* by a write (someone still has it open). An armed name
//! that saw no event for the debounce period is *ready*; [`Coalescer::settle`] hands ready names
//! out oldest first and forgets them. A name deleted or renamed away is forgotten at once. An
//! overflow (events were lost) forgets disarmed names, whose close may never be seen, and asks the
//! caller for a rescan.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What happened to a name (or, for [`Kind::Overflow`], to the event stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Written (or created) and maybe still open: wait for a close.
    Modified,
    /// Closed after writing: complete unless written again.
    CloseWrite,
    /// Renamed into the directory (or, polled, seen new or changed): complete as it is.
    MovedIn,
    /// Renamed out of the directory: forget it.
    MovedOut,
    /// Deleted: forget it.
    Deleted,
    /// Events were lost: forget unclosed writes and ask for a rescan (the name is ignored).
    Overflow,
}

/// What [`Coalescer::settle`] hands out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Names quiet for the debounce period since they were armed, oldest first.
    pub ready: Vec<Vec<u8>>,
    /// Events were lost since the previous call: the caller must list the directory.
    pub rescan: bool,
    /// When the next armed name becomes ready (None: none is armed).
    pub next: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Closed after writing / renamed in, and not written since.
    armed: bool,
    /// Time of the last event for this name.
    since: Instant,
    /// Order of arrival, to break ties between equal times.
    seq: u64,
}

/// Per-name quiet-period state; see the module documentation.
#[derive(Debug, Clone)]
pub struct Coalescer {
    entries: HashMap<Vec<u8>, Entry>,
    debounce: Duration,
    seq: u64,
    rescan: bool,
}

impl Coalescer {
    /// An empty coalescer with the given quiet period.
    pub fn new(debounce: Duration) -> Coalescer {
        Coalescer {
            entries: HashMap::new(),
            debounce,
            seq: 0,
            rescan: false,
        }
    }

    /// Record what happened to `name` at `now`.
    pub fn apply(&mut self, name: &[u8], kind: Kind, now: Instant) {
        let armed = match kind {
            Kind::MovedOut | Kind::Deleted => {
                self.entries.remove(name);
                return;
            }
            Kind::Overflow => {
                self.entries.retain(|_, e| e.armed);
                self.rescan = true;
                return;
            }
            Kind::Modified => false,
            Kind::CloseWrite | Kind::MovedIn => true,
        };
        self.seq += 1;
        let entry = Entry {
            armed,
            since: now,
            seq: self.seq,
        };
        self.entries.insert(name.to_vec(), entry);
    }

    /// Hand out (and forget) the names that are ready at `now`, oldest first.
    pub fn settle(&mut self, now: Instant) -> Settled {
        let mut due: Vec<(Instant, u64, Vec<u8>)> = Vec::new();
        let mut next: Option<Instant> = None;
        for (name, e) in &self.entries {
            if !e.armed {
                continue;
            }
            let deadline = e.since + self.debounce;
            if deadline <= now {
                due.push((e.since, e.seq, name.clone()));
            } else {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        due.sort_unstable();
        for (_, _, name) in &due {
            self.entries.remove(name);
        }
        Settled {
            ready: due.into_iter().map(|(_, _, n)| n).collect(),
            rescan: std::mem::take(&mut self.rescan),
            next,
        }
    }

    /// Names seen but not handed out yet (armed or still being written), oldest event first.
    pub fn pending(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<(Instant, u64, &Vec<u8>)> = self
            .entries
            .iter()
            .map(|(n, e)| (e.since, e.seq, n))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, _, n)| n.clone()).collect()
    }

    /// Whether `name` is tracked (armed or being written).
    pub fn contains(&self, name: &[u8]) -> bool {
        self.entries.contains_key(name)
    }

    /// The quiet period.
    pub fn debounce(&self) -> Duration {
        self.debounce
    }

    /// Change the quiet period; applies to names already armed too.
    pub fn set_debounce(&mut self, debounce: Duration) {
        self.debounce = debounce;
    }

    /// Forget every name (the directory is gone or replaced: the caller rescans).
    pub fn forget_all(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Kind::*;
    use super::*;

    /// One step of a case: an event at a time, or a settle at a time with what it must hand out.
    enum Step {
        Ev(u64, Kind, &'static str),
        Settle {
            at: u64,
            ready: &'static [&'static str],
            rescan: bool,
            next: Option<u64>,
        },
        Pending(&'static [&'static str]),
        Debounce(u64),
    }
    use Step::*;

    /// A settle at `at` that hands out `ready` (no rescan, next deadline unchecked).
    fn s(at: u64, ready: &'static [&'static str]) -> Step {
        Settle {
            at,
            ready,
            rescan: false,
            next: None,
        }
    }

    struct Case {
        name: &'static str,
        debounce_ms: u64,
        steps: Vec<Step>,
    }

    fn run(case: &Case) {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut c = Coalescer::new(Duration::from_millis(case.debounce_ms));
        for (i, step) in case.steps.iter().enumerate() {
            let ctx = format!("case {:?}, step {i}", case.name);
            match step {
                Ev(ms, kind, name) => c.apply(name.as_bytes(), *kind, at(*ms)),
                Settle {
                    at: ms,
                    ready,
                    rescan,
                    next,
                } => {
                    let got = c.settle(at(*ms));
                    let names: Vec<&str> = got
                        .ready
                        .iter()
                        .map(|n| std::str::from_utf8(n).unwrap())
                        .collect();
                    assert_eq!(&names, ready, "{ctx}: ready");
                    assert_eq!(got.rescan, *rescan, "{ctx}: rescan");
                    if let Some(n) = next {
                        assert_eq!(got.next, Some(at(*n)), "{ctx}: next deadline");
                    }
                }
                Pending(want) => {
                    let got: Vec<String> = c
                        .pending()
                        .iter()
                        .map(|n| String::from_utf8(n.clone()).unwrap())
                        .collect();
                    assert_eq!(&got, want, "{ctx}: pending");
                }
                Debounce(ms) => c.set_debounce(Duration::from_millis(*ms)),
            }
        }
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "write burst coalesces into one",
                debounce_ms: 100,
                steps: vec![
                    Ev(0, Modified, "a"),
                    Ev(1, CloseWrite, "a"),
                    Ev(10, Modified, "a"),
                    Ev(11, CloseWrite, "a"),
                    Ev(20, Modified, "a"),
                    Ev(21, CloseWrite, "a"),
                    Settle {
                        at: 120,
                        ready: &[],
                        rescan: false,
                        next: Some(121),
                    },
                    s(121, &["a"]),
                    Pending(&[]),
                    s(500, &[]),
                ],
            },
            Case {
                name: "close-write settles after the debounce",
                debounce_ms: 50,
                steps: vec![
                    Ev(0, CloseWrite, "a"),
                    s(49, &[]),
                    Pending(&["a"]),
                    s(50, &["a"]),
                ],
            },
            Case {
                name: "rename in settles without a close",
                debounce_ms: 50,
                steps: vec![Ev(0, MovedIn, "a"), s(10, &[]), s(60, &["a"])],
            },
            Case {
                name: "rename out before settling drops it",
                debounce_ms: 50,
                steps: vec![
                    Ev(0, CloseWrite, "a"),
                    Ev(20, MovedOut, "a"),
                    Pending(&[]),
                    s(100, &[]),
                ],
            },
            Case {
                name: "temp name renamed into place: only the final name",
                debounce_ms: 50,
                steps: vec![
                    Ev(0, Modified, ".a.tmp"),
                    Ev(1, CloseWrite, ".a.tmp"),
                    Ev(2, MovedOut, ".a.tmp"),
                    Ev(2, MovedIn, "a"),
                    s(100, &["a"]),
                ],
            },
            Case {
                name: "delete before settle: nothing",
                debounce_ms: 50,
                steps: vec![
                    Ev(0, Modified, "a"),
                    Ev(1, CloseWrite, "a"),
                    Ev(30, Deleted, "a"),
                    s(200, &[]),
                    Pending(&[]),
                ],
            },
            Case {
                name: "overflow forgets unclosed writes, keeps armed names, asks for a rescan",
                debounce_ms: 50,
                steps: vec![
                    Ev(0, Modified, "open"),
                    Ev(0, CloseWrite, "closed"),
                    Ev(10, Overflow, ""),
                    Pending(&["closed"]),
                    Settle {
                        at: 20,
                        ready: &[],
                        rescan: true,
                        next: Some(50),
                    },
                    s(50, &["closed"]),
                    s(60, &[]), // the rescan was asked once
                ],
            },
            Case {
                name: "file held open past the debounce is never emitted",
                debounce_ms: 50,
                steps: vec![
                    Ev(0, Modified, "slow"),
                    Settle {
                        at: 100,
                        ready: &[],
                        rescan: false,
                        next: None,
                    },
                    Ev(150, Modified, "slow"),
                    s(1000, &[]),
                    s(60_000, &[]),
                    Pending(&["slow"]),
                    Ev(60_001, CloseWrite, "slow"),
                    s(60_050, &[]),
                    s(60_051, &["slow"]),
                ],
            },
            Case {
                name: "written again before settling waits for the new close",
                debounce_ms: 50,
                steps: vec![
                    Ev(0, CloseWrite, "a"),
                    Ev(30, Modified, "a"),
                    s(100, &[]),
                    Ev(120, CloseWrite, "a"),
                    s(169, &[]),
                    s(170, &["a"]),
                ],
            },
            Case {
                name: "re-written after settle is emitted again",
                debounce_ms: 50,
                steps: vec![
                    Ev(0, CloseWrite, "a"),
                    s(50, &["a"]),
                    Ev(200, Modified, "a"),
                    Ev(201, CloseWrite, "a"),
                    s(251, &["a"]),
                    Ev(300, MovedIn, "a"),
                    s(350, &["a"]),
                ],
            },
            Case {
                name: "many paths interleaved come out oldest first",
                debounce_ms: 100,
                steps: vec![
                    Ev(0, Modified, "c"),
                    Ev(1, Modified, "a"),
                    Ev(2, Modified, "b"),
                    Ev(3, CloseWrite, "b"),
                    Ev(4, MovedIn, "d"),
                    Ev(5, CloseWrite, "c"),
                    Ev(6, CloseWrite, "a"),
                    Pending(&["b", "d", "c", "a"]),
                    s(104, &["b", "d"]),
                    Ev(105, Modified, "e"),
                    Ev(105, CloseWrite, "e"),
                    s(300, &["c", "a", "e"]),
                ],
            },
            Case {
                name: "same time: order of arrival",
                debounce_ms: 10,
                steps: vec![
                    Ev(0, CloseWrite, "z"),
                    Ev(0, CloseWrite, "y"),
                    Ev(0, CloseWrite, "x"),
                    s(10, &["z", "y", "x"]),
                ],
            },
            Case {
                name: "a longer debounce applies to armed names",
                debounce_ms: 50,
                steps: vec![
                    Ev(0, CloseWrite, "a"),
                    Debounce(500),
                    s(100, &[]),
                    Debounce(0),
                    s(100, &["a"]),
                ],
            },
        ]
    }

    #[test]
    fn table() {
        for case in cases() {
            run(&case);
        }
    }

    #[test]
    fn forget_all_and_contains() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO);
        c.apply(b"a", Kind::Modified, t0);
        c.apply(b"b", Kind::CloseWrite, t0);
        assert!(c.contains(b"a") && c.contains(b"b"));
        c.forget_all();
        assert!(c.pending().is_empty());
        assert_eq!(c.settle(t0), Settled::default());
        assert_eq!(c.debounce(), Duration::ZERO);
    }
}
