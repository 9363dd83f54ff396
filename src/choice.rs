//! Closed sets of named values that users pick by name: a lock backend, a request pattern, a
//! coherence strategy. One definition gives the Rust enum, its names (for command lines,
//! environment variables and JSON reports) and a line of help per value, so that the library
//! needs no command-line parser and the `brlock` binary repeats none of it.

/// A type whose values are chosen by name.
///
/// Implemented with the crate-internal `choice!` macro; the `brlock` binary builds its option
/// parsers from [`Choice::ALL`].
pub trait Choice: Copy + PartialEq + Send + Sync + 'static {
    /// Every value with its name and a one-line description, in the order users see them.
    const ALL: &'static [(Self, &'static str, &'static str)];

    /// Other names a value is also known by (e.g. `nonatomic` for a file backend `none`).
    const ALIASES: &'static [(Self, &'static str)] = &[];

    /// The value's name.
    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(v, _, _)| *v == self)
            .map_or("?", |(_, name, _)| name)
    }

    /// The value called `name` (or one of its aliases), if any.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .map(|&(v, n, _)| (v, n))
            .chain(Self::ALIASES.iter().copied())
            .find(|(_, n)| *n == name)
            .map(|(v, _)| v)
    }

    /// The names of every value, as "a, b or c", for error messages.
    fn expected() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|(_, n, _)| *n).collect();
        match names.split_last() {
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// Parses a [`Choice`] by name: the error names what was expected.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if `text` names no value.
pub fn parse<T: Choice>(what: &str, text: &str) -> crate::Result<T> {
    T::from_name(text.trim()).ok_or_else(|| {
        crate::Error::InvalidArgument(format!(
            "{what} {:?}: expected {}",
            text.trim(),
            T::expected()
        ))
    })
}

/// Defines a `Copy` enum whose variants are chosen by name, with [`Choice`], `Display` (the
/// name), `FromStr` and `serde::Serialize` (the name as a string). Each variant's first doc
/// line is its help text. `Name = "name" (default)` marks the `#[default]` variant (with
/// `#[derive(Default)]` on the enum).
///
/// ```text
/// choice! {
///     /// Which modes the ranks ask for.
///     pub enum ModeMix {
///         /// Every request exclusive.
///         Exclusive = "exclusive",
///         /// Every request shared.
///         Shared = "shared",
///     }
/// }
/// ```
macro_rules! choice {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $variant:ident = $text:literal $(($default:ident))?
            ),+ $(,)?
        }
        $(aliases { $($alias_variant:ident = $alias:literal),+ $(,)? })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(
                $(#[doc = $doc])*
                $(#[$default])?
                $variant,
            )+
        }

        impl $crate::choice::Choice for $name {
            const ALL: &'static [(Self, &'static str, &'static str)] = &[
                $(($name::$variant, $text, $crate::choice::first_line(concat!($($doc, "\n"),*)))),+
            ];
            $(const ALIASES: &'static [(Self, &'static str)] = &[
                $(($name::$alias_variant, $alias)),+
            ];)?
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($crate::choice::Choice::name(*self))
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::Error;

            fn from_str(s: &str) -> $crate::Result<Self> {
                $crate::choice::parse(stringify!($name), s)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str($crate::choice::Choice::name(*self))
            }
        }
    };
}

pub(crate) use choice;

/// The first non-empty line of a doc comment, trimmed (`const`, for `choice!`).
#[doc(hidden)]
pub const fn first_line(doc: &'static str) -> &'static str {
    let bytes = doc.as_bytes();
    let mut start = 0;
    // Skip leading blanks and empty lines.
    while start < bytes.len() && (bytes[start] == b' ' || bytes[start] == b'\n') {
        start += 1;
    }
    let mut end = start;
    while end < bytes.len() && bytes[end] != b'\n' {
        end += 1;
    }
    while end > start && bytes[end - 1] == b' ' {
        end -= 1;
    }
    let (_, rest) = bytes.split_at(start);
    let (line, _) = rest.split_at(end - start);
    match std::str::from_utf8(line) {
        Ok(s) => s,
        Err(_) => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    choice! {
        /// A test choice.
        enum Fruit {
            /// An apple.
            ///
            /// More about apples.
            Apple = "apple",
            /// A pear.
            Pear = "pear",
        }
        aliases { Pear = "poire" }
    }

    #[test]
    fn names_help_aliases_and_errors() {
        assert_eq!(Fruit::Apple.name(), "apple");
        assert_eq!(Fruit::Apple.to_string(), "apple");
        assert_eq!(Fruit::ALL[0].2, "An apple.");
        assert_eq!(Fruit::ALL[1].2, "A pear.");
        assert_eq!("poire".parse::<Fruit>().unwrap(), Fruit::Pear);
        assert_eq!(" pear ".parse::<Fruit>().unwrap(), Fruit::Pear);
        let err = "fig".parse::<Fruit>().unwrap_err().to_string();
        assert!(
            err.contains("\"fig\"") && err.contains("apple or pear"),
            "{err}"
        );
        assert_eq!(first_line("  \n x y  \nz"), "x y");
        assert_eq!(first_line(""), "");
    }
}
