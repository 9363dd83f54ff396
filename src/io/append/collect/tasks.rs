//! The tasks of `brlock collect`: a set given as number ranges (`--tasks 1-5000,7000`), as a
//! file of one task per line (`--task-file`), or one task per rank (no task option), and the
//! command line each task runs.

use std::path::Path;

use crate::error::{Error, Result};

/// The most tasks one run may have (each costs a few bytes of bookkeeping on every rank).
pub const MAX_TASKS: u64 = 100_000_000;

/// A set of tasks, numbered from 0 in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskSet {
    /// One task per rank: task `r` is rank `r`'s, and its label is `r`.
    Ranks(u64),
    /// Number ranges, inclusive: labels are the numbers.
    Ranges(Vec<(u64, u64)>),
    /// One task per line of a file (labels are line numbers from 1; `{line}` is the line).
    Lines {
        /// The file as given, for the index header.
        path: String,
        /// Its non-empty lines.
        lines: Vec<String>,
    },
}

impl TaskSet {
    /// Parses `--tasks`: comma-separated numbers and inclusive ranges `A-B`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the bad part, for an empty or reversed range, or more
    /// than [`MAX_TASKS`] tasks.
    pub fn ranges(spec: &str) -> Result<TaskSet> {
        let bad = |why: String| Error::InvalidArgument(format!("--tasks {spec}: {why}"));
        let mut ranges = Vec::new();
        let mut total = 0u64;
        for part in spec.split(',') {
            let part = part.trim();
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let number = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| bad(format!("`{part}` is not a number or a range A-B")))
            };
            let (a, b) = (number(a)?, number(b)?);
            if b < a {
                return Err(bad(format!("`{part}` is reversed")));
            }
            total = total.saturating_add(b - a + 1);
            if total > MAX_TASKS {
                return Err(bad(format!("more than {MAX_TASKS} tasks")));
            }
            ranges.push((a, b));
        }
        Ok(TaskSet::Ranges(ranges))
    }

    /// Reads `--task-file`: one task per non-empty line.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::InvalidArgument`] if it has no task
    /// or more than [`MAX_TASKS`], or a line is not UTF-8.
    pub fn file(path: &Path) -> Result<TaskSet> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            op: "read the task file",
            path: path.display().to_string(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::InvalidArgument(format!("task file {}: not UTF-8 text", path.display()))
        })?;
        let lines: Vec<String> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        if lines.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "task file {} has no task (one per non-empty line)",
                path.display()
            )));
        }
        if lines.len() as u64 > MAX_TASKS {
            return Err(Error::InvalidArgument(format!(
                "task file {}: more than {MAX_TASKS} tasks",
                path.display()
            )));
        }
        Ok(TaskSet::Lines {
            path: path.display().to_string(),
            lines,
        })
    }

    /// How many tasks.
    pub fn len(&self) -> u64 {
        match self {
            TaskSet::Ranks(n) => *n,
            TaskSet::Ranges(r) => r.iter().map(|(a, b)| b - a + 1).sum(),
            TaskSet::Lines { lines, .. } => lines.len() as u64,
        }
    }

    /// Whether there is no task.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set as the index header records it.
    pub fn spec(&self) -> String {
        match self {
            TaskSet::Ranks(n) => format!("ranks:{n}"),
            TaskSet::Ranges(r) => r
                .iter()
                .map(|&(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
            TaskSet::Lines { path, lines } => format!("file:{path}:{}", lines.len()),
        }
    }

    /// The label of task `i` (`{task}`): its number, its line number, or its rank.
    pub fn label(&self, i: u64) -> String {
        match self {
            TaskSet::Ranks(_) => i.to_string(),
            TaskSet::Ranges(ranges) => {
                let mut rest = i;
                for &(a, b) in ranges {
                    let n = b - a + 1;
                    if rest < n {
                        return (a + rest).to_string();
                    }
                    rest -= n;
                }
                i.to_string()
            }
            TaskSet::Lines { .. } => (i + 1).to_string(),
        }
    }

    /// The line of task `i` of a task file.
    pub fn line(&self, i: u64) -> Option<&str> {
        match self {
            TaskSet::Lines { lines, .. } => usize::try_from(i)
                .ok()
                .and_then(|i| lines.get(i))
                .map(String::as_str),
            _ => None,
        }
    }
}

/// What one attempt of one task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCommand {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Extra environment: `BRLOCK_TASK`, `BRLOCK_ATTEMPT` (and the caller adds the rank).
    pub env: Vec<(String, String)>,
}

/// The command of attempt `attempt` of task `task` on `rank`: `{task}`, `{attempt}`,
/// `{rank}` and (task files) `{line}` replaced in `command`; a task file's line without
/// `{line}` in the command is appended as arguments (split at whitespace), and without a
/// command it runs as `sh -c LINE`.
pub fn command_for(
    set: &TaskSet,
    command: &[String],
    task: u64,
    attempt: u32,
    rank: i32,
) -> TaskCommand {
    let label = set.label(task);
    let line = set.line(task);
    let subst = |a: &str| {
        let mut s = a
            .replace("{task}", &label)
            .replace("{attempt}", &attempt.to_string())
            .replace("{rank}", &rank.to_string());
        if let Some(line) = line {
            s = s.replace("{line}", line);
        }
        s
    };
    let mut argv: Vec<String> = command.iter().map(|a| subst(a)).collect();
    if let Some(line) = line {
        if argv.is_empty() {
            argv = vec!["sh".into(), "-c".into(), line.to_string()];
        } else if !command.iter().any(|a| a.contains("{line}")) {
            argv.extend(line.split_whitespace().map(str::to_string));
        }
    }
    TaskCommand {
        argv,
        env: vec![
            ("BRLOCK_TASK".into(), label),
            ("BRLOCK_ATTEMPT".into(), attempt.to_string()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_label() {
        let set = TaskSet::ranges("1-3, 10,20-21").unwrap();
        assert_eq!(set.len(), 6);
        let labels: Vec<String> = (0..6).map(|i| set.label(i)).collect();
        assert_eq!(labels, ["1", "2", "3", "10", "20", "21"]);
        assert_eq!(set.spec(), "1-3,10,20-21");
        for bad in ["", "5-1", "a", "1-", "1-2-3", "0-200000000"] {
            assert!(TaskSet::ranges(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commands_substitute() {
        let set = TaskSet::ranges("7").unwrap();
        let cmd = [
            "run".to_string(),
            "--in=t{task}.{attempt}".into(),
            "{rank}".into(),
        ];
        let c = command_for(&set, &cmd, 0, 2, 5);
        assert_eq!(c.argv, ["run", "--in=t7.2", "5"]);
        assert!(c.env.contains(&("BRLOCK_TASK".into(), "7".into())));

        let lines = TaskSet::Lines {
            path: "t.txt".into(),
            lines: vec!["a b".into(), "echo hi".into()],
        };
        assert_eq!(
            command_for(&lines, &["prog".into()], 0, 1, 0).argv,
            ["prog", "a", "b"]
        );
        assert_eq!(
            command_for(&lines, &["prog".into(), "[{line}]".into()], 0, 1, 0).argv,
            ["prog", "[a b]"]
        );
        assert_eq!(
            command_for(&lines, &[], 1, 1, 0).argv,
            ["sh", "-c", "echo hi"]
        );
        assert_eq!(lines.label(1), "2");
        assert_eq!(TaskSet::Ranks(4).spec(), "ranks:4");
    }
}
