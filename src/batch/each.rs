//! `--each "zero --offset 1M --length 512"`: a recipe written as a small
//! command line of its own, parsed with clap.

use super::recipe::RecipeSpec;
use crate::error::{Error, Result};
use crate::units::parse_bytes;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "--each", no_binary_name = true, disable_help_subcommand = true)]
struct EachLine {
    #[command(subcommand)]
    recipe: EachRecipe,
}

#[derive(Debug, Subcommand)]
enum EachRecipe {
    /// No change.
    Empty,
    /// Zero a guest byte range.
    Zero {
        #[arg(long, value_parser = parse_bytes)]
        offset: u64,
        #[arg(long, value_parser = parse_bytes)]
        length: u64,
    },
    /// Write a file's bytes at a guest offset.
    Write {
        #[arg(long, value_parser = parse_bytes)]
        offset: u64,
        #[arg(long)]
        from: PathBuf,
    },
    /// Zero the start of an NTFS partition's boot sector.
    NtfsBoot {
        #[arg(long)]
        partition: Option<u32>,
        #[arg(long, default_value_t = 1)]
        sectors: u64,
    },
}

/// Parses a recipe written like a command line, e.g.
/// `zero --offset 1M --length 512`, `write --offset 0 --from 'my file'`,
/// `empty`. Words split at white space; single and double quotes group, and
/// a backslash escapes the next character. Errors are [`Error::Usage`].
pub fn parse_each(text: &str) -> Result<RecipeSpec> {
    let words = split_words(text)?;
    let line = EachLine::try_parse_from(&words).map_err(|e| {
        // clap's message, without its usage and tip paragraphs, on one line.
        let msg = e.to_string();
        let what: Vec<&str> = msg
            .lines()
            .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
            .map(str::trim)
            .collect();
        let what = what.join(" ");
        Error::Usage(format!(
            "--each '{text}': {}",
            what.strip_prefix("error: ").unwrap_or(&what)
        ))
    })?;
    Ok(match line.recipe {
        EachRecipe::Empty => RecipeSpec::Empty,
        EachRecipe::Zero { offset, length } => RecipeSpec::Zero { offset, length },
        EachRecipe::Write { offset, from } => RecipeSpec::Write { offset, from },
        EachRecipe::NtfsBoot { partition, sectors } => RecipeSpec::NtfsBoot { partition, sectors },
    })
}

/// Splits `text` into words like a POSIX shell, without expansions.
fn split_words(text: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(unclosed(text)),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => w.push(chars.next().ok_or_else(|| unclosed(text))?),
                        Some(c) => w.push(c),
                        None => return Err(unclosed(text)),
                    }
                }
            }
            '\\' => {
                let next = chars.next().ok_or_else(|| unclosed(text))?;
                word.get_or_insert_with(String::new).push(next);
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

fn unclosed(text: &str) -> Error {
    Error::Usage(format!(
        "--each '{text}': unclosed quote or trailing backslash"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_parse_and_round_trip() {
        assert_eq!(
            parse_each("zero --offset 1M --length 512").unwrap(),
            RecipeSpec::Zero {
                offset: 1 << 20,
                length: 512
            }
        );
        assert_eq!(parse_each("  empty ").unwrap(), RecipeSpec::Empty);
        let w = parse_each(r#"write --offset 8s --from "a b"'c'\ d"#).unwrap();
        assert_eq!(
            w,
            RecipeSpec::Write {
                offset: 4096,
                from: PathBuf::from("a bc d")
            }
        );
        assert_eq!(parse_each(&w.describe()).unwrap(), w);
        for r in [
            RecipeSpec::Empty,
            RecipeSpec::Zero {
                offset: 3,
                length: 4,
            },
            RecipeSpec::NtfsBoot {
                partition: Some(2),
                sectors: 8,
            },
            RecipeSpec::NtfsBoot {
                partition: None,
                sectors: 1,
            },
        ] {
            assert_eq!(parse_each(&r.describe()).unwrap(), r);
        }
    }

    #[test]
    fn errors_are_one_line_usage_errors() {
        for bad in [
            "",
            "zero --offset 1M",
            "zap",
            "zero --offset 1X --length 1",
            "write 'x",
        ] {
            let e = parse_each(bad).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad}: {e}");
            assert!(!e.to_string().contains('\n'), "{bad}: {e}");
        }
    }
}
