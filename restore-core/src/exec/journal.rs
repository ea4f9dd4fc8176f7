//! The run journal: an append-only file of JSON lines that lets a crashed or
//! cancelled run resume without redoing finished steps or written chunks.
//!
//! ```text
//! {"plan":"<combined fingerprint>"}         header, first line
//! {"created":{...resource...}}              a create returned
//! {"done":"disk:web01-osdisk"}              a step finished
//! {"chunk":"web01-osdisk","offset":4194304} a chunk was written
//! {"reset":true}                            clean-up ran: start over
//! ```
//!
//! Lines are flushed to the OS as they are written, so they survive the
//! process being killed; a torn last line is ignored on reading.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::cloud::Resource;
use crate::error::{Error, Result};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Header { plan: String },
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

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Journal {
    /// Opens the journal at `path` for the plan with fingerprint `plan`:
    /// reads what an earlier run of the same plan recorded, or starts a new
    /// journal. A journal of another plan is an error (nothing is changed).
    pub fn open(path: &Path, plan: &str) -> Result<(Journal, JournalState)> {
        let err = |m: String| Error::Journal(format!("{}: {m}", path.display()));
        let mut state = JournalState::default();
        let exists = path.exists();
        if exists {
            let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
            let mut lines = std::io::BufReader::new(f).lines();
            match lines.next() {
                Some(Ok(first)) => match serde_json::from_str::<Line>(&first) {
                    Ok(Line::Header { plan: p }) if p == plan => {}
                    Ok(Line::Header { .. }) => {
                        return Err(err(
                            "it belongs to another plan; remove it or use another path".into(),
                        ));
                    }
                    _ => return Err(err("it is not a vmrestore journal".into())),
                },
                Some(Err(e)) => return Err(err(e.to_string())),
                None => {}
            }
            for line in lines {
                let Ok(line) = line else { break };
                // A torn last line (the process died mid-write) ends the journal.
                let Ok(parsed) = serde_json::from_str::<Line>(&line) else {
                    break;
                };
                match parsed {
                    Line::Created { created } => state.created.push(created),
                    Line::Done { done } => {
                        state.done.insert(done);
                    }
                    Line::Chunk { chunk, offset } => {
                        state.chunks.entry(chunk).or_default().insert(offset);
                    }
                    Line::Reset { .. } => state = JournalState::default(),
                    Line::Header { .. } => {}
                }
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        if !exists || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
            let header = serde_json::to_string(&Line::Header {
                plan: plan.to_string(),
            })
            .unwrap_or_default();
            writeln!(file, "{header}").map_err(|e| err(e.to_string()))?;
        }
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Mutex::new(file),
            },
            state,
        ))
    }

    fn append(&self, line: &Line) -> Result<()> {
        let text = serde_json::to_string(line).unwrap_or_default();
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // One write call per line, so a kill leaves at most one torn line.
        f.write_all(format!("{text}\n").as_bytes())
            .map_err(|e| Error::Journal(format!("{}: {e}", self.path.display())))
    }

    /// Records a created resource.
    pub fn created(&self, r: &Resource) -> Result<()> {
        self.append(&Line::Created { created: r.clone() })
    }

    /// Records a finished step.
    pub fn done(&self, step: &str) -> Result<()> {
        self.append(&Line::Done {
            done: step.to_string(),
        })
    }

    /// Records a written chunk.
    pub fn chunk(&self, disk: &str, offset: u64) -> Result<()> {
        self.append(&Line::Chunk {
            chunk: disk.to_string(),
            offset,
        })
    }

    /// Records that clean-up ran: a later run starts from scratch.
    pub fn reset(&self) -> Result<()> {
        self.append(&Line::Reset { reset: true })
    }
}
