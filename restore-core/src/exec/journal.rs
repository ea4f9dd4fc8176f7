//! The run journal: an append-only file of JSON lines that lets a crashed or
//! cancelled run resume without redoing finished steps or written chunks.
//!
//! ```text
//! {"format":"vmrestore-journal/2","plan":"<combined fingerprint>","journal":"<id>"}   line 1
//! {"j":"<id>","n":2,"created":{...resource...}}              a create returned
//! {"j":"<id>","n":3,"done":"disk:web01-osdisk"}              a step finished
//! {"j":"<id>","n":4,"chunk":"web01-osdisk","offset":4194304} a chunk was written
//! {"j":"<id>","n":5,"reset":true}                            clean-up ran: start over
//! ```
//!
//! The journal ID (`<id>`) is the first 16 hex digits of the plan's
//! fingerprint, a '-', and 16 random hex digits chosen when the journal was
//! started; every line carries it and its own line number (`n`), so a line
//! of another plan's or another journal's file, or a line copied to another
//! place, is refused with an error naming its line number.
//!
//! Integrity and exclusion:
//! * the file is locked (`flock`, exclusive, not waiting) for as long as the
//!   [`Journal`] lives: a second executor on the same journal fails with
//!   [`Error::JournalLocked`] before it reads or writes anything else;
//! * lines are written one `write` call each and flushed to the OS, so a
//!   killed process leaves at most one torn last line; on open, a torn tail
//!   (a last line without its newline, or one that does not parse) is cut
//!   off before anything is appended, so the next run's lines start on a
//!   line of their own. A line that does not parse elsewhere is an error.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cloud::Resource;
use crate::error::{Error, Result};

/// Format tag of the journal's header.
pub const JOURNAL_FORMAT: &str = "vmrestore-journal/2";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    plan: String,
    journal: String,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// The journal ID of the header.
    j: String,
    /// The line's number in the file (the header is line 1).
    n: u64,
    #[serde(flatten)]
    body: Body,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Body {
    Created { created: Resource },
    Done { done: String },
    Chunk { chunk: String, offset: u64 },
    Reset { reset: bool },
}

/// What an earlier run recorded.
#[derive(Debug, Default, Clone)]
pub struct JournalState {
    /// Resources created, in order.
    pub created: Vec<Resource>,
    /// Steps finished.
    pub done: HashSet<String>,
    /// Chunks written, by disk.
    pub chunks: HashMap<String, HashSet<u64>>,
}

/// An open journal; it holds the file's lock until dropped.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    id: String,
    /// The file (locked) and the number the next line gets.
    file: Mutex<(std::fs::File, u64)>,
}

fn new_id(plan: &str) -> String {
    let mut h = Sha256::new();
    h.update(plan.as_bytes());
    h.update(std::process::id().to_be_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(now.to_be_bytes());
    let here = &h as *const _ as usize;
    h.update(here.to_be_bytes());
    let nonce = hex::encode(h.finalize());
    format!("{}-{}", &plan[..16.min(plan.len())], &nonce[..16])
}

impl Journal {
    /// Opens the journal at `path` for the plan with fingerprint `plan`:
    /// locks it (another holder: [`Error::JournalLocked`]), reads what an
    /// earlier run of the same plan recorded, cuts off a torn last line, or
    /// starts a new journal. A journal of another plan, a file that is not a
    /// journal, or a line that is not this journal's is an error (nothing is
    /// changed).
    pub fn open(path: &Path, plan: &str) -> Result<(Journal, JournalState)> {
        let err = |m: String| Error::Journal(format!("{}: {m}", path.display()));
        // O_NONBLOCK: a FIFO at the path does not hang the open (and is
        // refused below).
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        if !file.metadata().map_err(|e| err(e.to_string()))?.is_file() {
            return Err(err("it is not a regular file".into()));
        }
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Error::JournalLocked(format!(
                    "{}: another run holds this journal; wait for it to end or use another path",
                    path.display()
                ))
            } else {
                err(format!("cannot lock it: {e}"))
            });
        }
        let mut bytes = Vec::new();
        file.rewind()
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| err(e.to_string()))?;
        let (state, id, keep, next) = Self::read(&bytes, plan).map_err(err)?;
        let id = match id {
            Some(id) => id,
            None => new_id(plan),
        };
        if keep < bytes.len() as u64 {
            tracing::warn!(
                journal = %path.display(),
                bytes = bytes.len() as u64 - keep,
                "a torn last line of the journal is cut off"
            );
            file.set_len(keep)
                .and_then(|_| file.sync_data())
                .map_err(|e| err(format!("cannot cut off its torn last line: {e}")))?;
        }
        if keep == 0 {
            let header = serde_json::to_string(&Header {
                format: JOURNAL_FORMAT.into(),
                plan: plan.to_string(),
                journal: id.clone(),
            })
            .unwrap_or_default();
            file.write_all(format!("{header}\n").as_bytes())
                .map_err(|e| err(e.to_string()))?;
        }
        Ok((
            Journal {
                path: path.to_path_buf(),
                id,
                file: Mutex::new((file, next)),
            },
            state,
        ))
    }

    /// Parses a journal's bytes: the state, the journal ID (none for an
    /// empty or torn-header file), how many bytes to keep, and the number of
    /// the next line.
    #[allow(clippy::type_complexity)]
    fn read(
        bytes: &[u8],
        plan: &str,
    ) -> std::result::Result<(JournalState, Option<String>, u64, u64), String> {
        let mut state = JournalState::default();
        // Complete lines end with '\n'; what follows the last one is torn.
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut lines: Vec<&[u8]> = bytes[..complete].split(|b| *b == b'\n').collect::<Vec<_>>();
        lines.pop(); // the empty piece after the last '\n'
        let Some(first) = lines.first() else {
            // No complete line: empty, or a header torn while it was being
            // written. Anything else is not ours to cut.
            let torn = &bytes[complete..];
            let start = format!("{{\"format\":\"{JOURNAL_FORMAT}\",\"plan\":\"{plan}\"");
            let t = torn
                .iter()
                .rposition(|b| *b != 0)
                .map_or(&torn[..0], |i| &torn[..=i]);
            if t.is_empty() || start.as_bytes().starts_with(t) || t.starts_with(start.as_bytes()) {
                return Ok((state, None, 0, 2));
            }
            return Err("it is not a vmrestore journal".into());
        };
        let header: Header = match serde_json::from_slice(first) {
            Ok(h) => h,
            Err(_) => {
                let old = serde_json::from_slice::<serde_json::Value>(first)
                    .is_ok_and(|v| v.get("plan").is_some());
                return Err(if old {
                    "it was written by an earlier vmrestore (an older journal format); remove it \
                     or use another path"
                        .into()
                } else {
                    "it is not a vmrestore journal".into()
                });
            }
        };
        if header.format != JOURNAL_FORMAT {
            return Err(format!(
                "unknown journal format '{}' (expected {JOURNAL_FORMAT})",
                header.format.chars().take(64).collect::<String>()
            ));
        }
        if header.plan != plan {
            return Err("it belongs to another plan; remove it or use another path".into());
        }
        if !header.journal.starts_with(&plan[..16.min(plan.len())]) {
            return Err("line 1: the journal ID is not of this plan".into());
        }
        let mut keep = (first.len() + 1) as u64;
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate().skip(1) {
            let n = i as u64 + 1;
            let entry: Entry = match serde_json::from_slice(line) {
                Ok(e) => e,
                // A last line that does not parse was torn (a power loss can
                // leave it zero-filled); it is cut off.
                Err(_) if i == last => break,
                Err(e) => return Err(format!("line {n} does not parse: {e}")),
            };
            if entry.j != header.journal {
                return Err(format!(
                    "line {n} belongs to another journal or plan (journal ID '{}', this journal is '{}')",
                    entry.j.chars().take(40).collect::<String>(),
                    header.journal
                ));
            }
            if entry.n != n {
                return Err(format!(
                    "line {n} says it is line {} (moved or copied from elsewhere)",
                    entry.n
                ));
            }
            match entry.body {
                Body::Created { created } => state.created.push(created),
                Body::Done { done } => {
                    state.done.insert(done);
                }
                Body::Chunk { chunk, offset } => {
                    state.chunks.entry(chunk).or_default().insert(offset);
                }
                Body::Reset { .. } => state = JournalState::default(),
            }
            keep += (line.len() + 1) as u64;
        }
        let next = keep_lines(bytes, keep) + 1;
        Ok((state, Some(header.journal), keep, next))
    }

    /// The journal's ID (see the module docs).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn append(&self, body: Body) -> Result<()> {
        let mut g = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let (f, n) = &mut *g;
        let text = serde_json::to_string(&Entry {
            j: self.id.clone(),
            n: *n,
            body,
        })
        .unwrap_or_default();
        // One write call per line, so a kill leaves at most one torn line.
        f.write_all(format!("{text}\n").as_bytes())
            .map_err(|e| Error::Journal(format!("{}: {e}", self.path.display())))?;
        *n += 1;
        Ok(())
    }

    /// Records a created resource.
    pub fn created(&self, r: &Resource) -> Result<()> {
        self.append(Body::Created { created: r.clone() })
    }

    /// Records a finished step.
    pub fn done(&self, step: &str) -> Result<()> {
        self.append(Body::Done {
            done: step.to_string(),
        })
    }

    /// Records a written chunk.
    pub fn chunk(&self, disk: &str, offset: u64) -> Result<()> {
        self.append(Body::Chunk {
            chunk: disk.to_string(),
            offset,
        })
    }

    /// Records that clean-up ran: a later run starts from scratch.
    pub fn reset(&self) -> Result<()> {
        self.append(Body::Reset { reset: true })
    }
}

/// Number of lines in the first `keep` bytes.
fn keep_lines(bytes: &[u8], keep: u64) -> u64 {
    bytes[..keep as usize]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_second_open_is_locked_out_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let (j, _) = Journal::open(&p, PLAN).unwrap();
        let e = Journal::open(&p, PLAN).unwrap_err();
        assert_eq!(e.code(), "E_JOURNAL_LOCKED", "{e}");
        drop(j);
        Journal::open(&p, PLAN).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_off_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        {
            let (j, _) = Journal::open(&p, PLAN).unwrap();
            j.done("a").unwrap();
            j.chunk("d", 0).unwrap();
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"j":"x","n":4,"chunk":"d","off"#).unwrap();
        drop(f);
        {
            let (j, s) = Journal::open(&p, PLAN).unwrap();
            assert!(s.done.contains("a"));
            j.chunk("d", 512).unwrap();
        }
        let (_, s) = Journal::open(&p, PLAN).unwrap();
        assert_eq!(
            s.chunks["d"],
            HashSet::from([0, 512]),
            "progress not hidden"
        );
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("\"off\""), "torn tail removed: {text}");
        // A zero-filled last line (power loss) is cut off too.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[0u8; 40]).unwrap();
        f.write_all(b"\n").unwrap();
        drop(f);
        let (j, _) = Journal::open(&p, PLAN).unwrap();
        j.done("b").unwrap();
        drop(j);
        let (_, s) = Journal::open(&p, PLAN).unwrap();
        assert!(s.done.contains("b"));
    }

    #[test]
    fn foreign_or_moved_lines_are_refused_with_their_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        {
            let (j, _) = Journal::open(&a, PLAN).unwrap();
            j.done("x").unwrap();
            j.done("y").unwrap();
            let (k, _) = Journal::open(&b, other).unwrap();
            k.done("z").unwrap();
        }
        let ta = std::fs::read_to_string(&a).unwrap();
        let tb = std::fs::read_to_string(&b).unwrap();
        let la: Vec<&str> = ta.lines().collect();
        let lb: Vec<&str> = tb.lines().collect();
        // Another plan's line pasted in the middle.
        std::fs::write(&a, format!("{}\n{}\n{}\n", la[0], lb[1], la[2])).unwrap();
        let e = Journal::open(&a, PLAN).unwrap_err();
        assert_eq!(e.code(), "E_JOURNAL");
        assert!(e.to_string().contains("line 2 belongs to another"), "{e}");
        // A line of this journal copied to another place.
        std::fs::write(&a, format!("{}\n{}\n{}\n{}\n", la[0], la[1], la[2], la[1])).unwrap();
        let e = Journal::open(&a, PLAN).unwrap_err();
        assert!(e.to_string().contains("line 4 says it is line 2"), "{e}");
        // Nothing was cut or changed by the refusals.
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            format!("{}\n{}\n{}\n{}\n", la[0], la[1], la[2], la[1])
        );
        // A file that is not a journal is not cut, even without a newline.
        std::fs::write(&a, "precious").unwrap();
        assert!(Journal::open(&a, PLAN).is_err());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "precious");
    }
}
