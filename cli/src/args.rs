//! What the command files share about parsing: option parsers for the library's named choices
//! (their names and help come from the library), and argument groups that several commands
//! take alike.

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Args;

use brlock::choice::Choice;

/// A byte count the parser bounded (to at most 2^30) as a `usize`.
pub fn to_usize(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// Parses one of the values of `T` by name (aliases included), listing every value with its
/// help in `--help`.
pub fn choice<T: Choice>() -> ChoiceParser<T> {
    ChoiceParser {
        only: None,
        _type: PhantomData,
    }
}

/// [`choice`] restricted to `only` (a command that accepts some of a choice's values).
pub fn choice_of<T: Choice>(only: &'static [T]) -> ChoiceParser<T> {
    ChoiceParser {
        only: Some(only),
        _type: PhantomData,
    }
}

/// See [`choice`].
#[derive(Clone)]
pub struct ChoiceParser<T: 'static> {
    only: Option<&'static [T]>,
    _type: PhantomData<T>,
}

impl<T: Choice> ChoiceParser<T> {
    fn values(&self) -> impl Iterator<Item = PossibleValue> + '_ {
        T::ALL
            .iter()
            .filter(|(v, _, _)| self.only.map_or(true, |only| only.contains(v)))
            .map(|&(v, name, help)| {
                let aliases = T::ALIASES.iter().filter(move |(a, _)| *a == v);
                PossibleValue::new(name)
                    .help(help)
                    .aliases(aliases.map(|(_, alias)| *alias))
            })
    }
}

impl<T: Choice + Clone> TypedValueParser for ChoiceParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        // clap checks the value against the list and words the error.
        let name = PossibleValuesParser::new(self.values()).parse_ref(cmd, arg, value)?;
        T::from_name(&name).ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidValue))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.values()))
    }
}

/// `--json`.
#[derive(Debug, Args)]
pub struct Json {
    /// Print one JSON object (on rank 0) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--file` and `--alt-file` of the I/O checks, which need a file.
#[derive(Debug, Args)]
pub struct CheckFile {
    /// The file to use (created if missing; overwritten from offset 0). Every rank must reach
    /// it: a distributed file system is the interesting case.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// The same file through another mount (another client): odd ranks use this path.
    #[arg(long, value_name = "PATH")]
    pub alt_file: Option<PathBuf>,
}

/// `--file` and `--alt-file` of the I/O benchmarks, which make a file when none is given.
#[derive(Debug, Args)]
pub struct BenchFile {
    /// The file to use (created if missing; overwritten). Default: a file rank 0 creates in
    /// the temporary directory (single node only), removed afterwards.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The same file through another mount (another client): odd ranks use this path.
    #[arg(long, value_name = "PATH", requires = "file")]
    pub alt_file: Option<PathBuf>,
}

/// `--homes` and `--stripe` of the lock check and benchmark: the one-sided service sharded.
#[derive(Debug, Args)]
pub struct Shards {
    /// Spread the lock table over this many home ranks (--backend rma; 1 to 8, at most the
    /// ranks): stripes of --stripe bytes go round-robin to homes spread evenly from --home.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=8))]
    pub homes: u64,
    /// Stripe size of --homes, in bytes (default: two 4 KiB cells, so that each rank's range
    /// of --pattern disjoint is one stripe).
    #[arg(long, default_value_t = brlock::check::lock::DEFAULT_STRIPE,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stripe: u64,
}
