//! The registry's machinery: a recipe with its parameters as one value
//! ([`Spec`]), and everything front-ends derive from a recipe type
//! ([`DynRecipe`]): its clap command, its fields, parsing from words
//! (`--each`) and from a manifest table.

use super::{Catalogue, Plan, Prediction, Recipe, Target, RECIPES};
use crate::error::{Error, Result};
use crate::image::ReadAt;
use crate::recipe::select::Found;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

/// A recipe of the registry, with its type erased: what front-ends need.
pub trait DynRecipe: Send + Sync {
    /// See [`Recipe::NAME`].
    fn name(&self) -> &'static str;
    /// See [`Recipe::ABOUT`].
    fn about(&self) -> &'static str;
    /// See [`Recipe::REPEATABLE`].
    fn repeatable(&self) -> bool;
    /// See [`Recipe::catalogue`].
    fn catalogue(&self) -> Catalogue;
    /// The clap command `NAME [ARGS]` holding the parameters' arguments.
    fn command(&self) -> clap::Command;
    /// `cmd` with the parameters' arguments added (what [`DynRecipe::command`]
    /// adds to a new command named [`DynRecipe::name`]).
    fn augment_args(&self, cmd: clap::Command) -> clap::Command;
    /// The parameters from parsed arguments of [`DynRecipe::command`].
    fn spec_from_matches(&self, m: &clap::ArgMatches) -> Result<Spec>;
    /// The parameters with relative paths resolved against `dir`.
    fn resolve_paths(&self, spec: &Spec, dir: &Path) -> Spec;
    /// See [`Recipe::verify`].
    fn verify(&self, partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>>;

    /// The parameters: name, type, whether required, default, help.
    fn fields(&self) -> Vec<Field> {
        fields_of(&self.command())
    }
}

/// One parameter of a recipe, as `qfault recipes --json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Field {
    /// The manifest field (snake_case); the option is `--` + it with dashes.
    pub name: String,
    /// The command-line option.
    pub option: String,
    /// `bytes`, `integer`, `path`, `string` or `flag`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether it must be given.
    pub required: bool,
    /// The default, when there is one.
    pub default: Option<String>,
    /// What it means.
    pub help: String,
}

fn fields_of(cmd: &clap::Command) -> Vec<Field> {
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some())
        .map(|a| {
            let value = a
                .get_value_names()
                .and_then(|v| v.first())
                .map(|s| s.as_str());
            let kind = if !a.get_action().takes_values() {
                "flag"
            } else {
                match value {
                    Some("BYTES") => "bytes",
                    Some("FILE") => "path",
                    Some("FS") => "string",
                    _ => "integer",
                }
            };
            Field {
                name: a.get_id().to_string(),
                option: format!("--{}", a.get_long().unwrap_or_default()),
                kind,
                required: a.is_required_set(),
                default: a
                    .get_default_values()
                    .first()
                    .map(|v| v.to_string_lossy().into_owned())
                    .filter(|_| kind != "flag"),
                help: a.get_help().map(|h| h.to_string()).unwrap_or_default(),
            }
        })
        .collect()
}

/// The registry entry of recipe `R` (a zero-sized handle).
pub(crate) struct Entry<R>(PhantomData<fn() -> R>);

impl<R> Entry<R> {
    pub(crate) const NEW: Self = Entry(PhantomData);
}

impl<R: Recipe> DynRecipe for Entry<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn about(&self) -> &'static str {
        R::ABOUT
    }

    fn repeatable(&self) -> bool {
        R::REPEATABLE
    }

    fn catalogue(&self) -> Catalogue {
        R::catalogue()
    }

    fn command(&self) -> clap::Command {
        self.augment_args(
            clap::Command::new(R::NAME)
                .about(R::ABOUT)
                .disable_help_flag(true),
        )
    }

    fn augment_args(&self, cmd: clap::Command) -> clap::Command {
        <R::Params as clap::Args>::augment_args(cmd)
    }

    fn spec_from_matches(&self, m: &clap::ArgMatches) -> Result<Spec> {
        let params = <R::Params as clap::FromArgMatches>::from_arg_matches(m)
            .map_err(|e| Error::Usage(clap_line(&e)))?;
        Ok(Spec::new::<R>(params))
    }

    fn resolve_paths(&self, spec: &Spec, dir: &Path) -> Spec {
        match spec.params::<R>() {
            Some(p) => {
                let mut p = p.clone();
                R::resolve_paths(&mut p, dir);
                Spec::new::<R>(p)
            }
            None => spec.clone(),
        }
    }

    fn verify(&self, partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        R::verify(partition, now)
    }
}

/// The registry entry named `name`.
pub fn find(name: &str) -> Option<&'static dyn DynRecipe> {
    RECIPES.iter().copied().find(|r| r.name() == name)
}

/// A recipe with its parameters: what `inject`, a chain link or a manifest
/// entry applies. Compared by recipe and parameters.
#[derive(Clone)]
pub struct Spec(Arc<dyn Bound>);

/// The object behind a [`Spec`].
trait Bound: Send + Sync {
    fn name(&self) -> &'static str;
    fn entry(&self) -> &'static dyn DynRecipe;
    fn params_json(&self) -> serde_json::Value;
    fn plan(&self, disk: &mut dyn ReadAt) -> Result<Plan>;
    fn predict(&self, target: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction>;
    fn as_any(&self) -> &dyn std::any::Any;
}

struct BoundParams<R: Recipe>(R::Params);

impl<R: Recipe> Bound for BoundParams<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn entry(&self) -> &'static dyn DynRecipe {
        find(R::NAME).unwrap_or(&Entry::<R>::NEW)
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).unwrap_or(serde_json::Value::Null)
    }

    fn plan(&self, disk: &mut dyn ReadAt) -> Result<Plan> {
        R::plan(&self.0, disk)
    }

    fn predict(&self, target: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
        R::predict(&self.0, target, damaged)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        &self.0
    }
}

impl Spec {
    /// Recipe `R` with `params`.
    pub fn new<R: Recipe>(params: R::Params) -> Self {
        Spec(Arc::new(BoundParams::<R>(params)))
    }

    /// Parses a recipe written as words, e.g. `zero --offset 1M --length 512`
    /// (see [`parse_words`]).
    pub fn parse(text: &str) -> Result<Self> {
        parse_words(text)
    }

    /// The recipe's name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The recipe's registry entry.
    pub fn recipe(&self) -> &'static dyn DynRecipe {
        self.0.entry()
    }

    /// The parameters as `R::Params`, when this is recipe `R`.
    pub fn params<R: Recipe>(&self) -> Option<&R::Params> {
        self.0.as_any().downcast_ref::<R::Params>()
    }

    /// The parameters as a JSON object (what reports print).
    pub fn params_json(&self) -> serde_json::Value {
        self.0.params_json()
    }

    /// Whether a chain may apply it on top of itself.
    pub fn repeatable(&self) -> bool {
        self.recipe().repeatable()
    }

    /// See [`Recipe::plan`].
    pub fn plan(&self, disk: &mut dyn ReadAt) -> Result<Plan> {
        self.0.plan(disk)
    }

    /// See [`Recipe::predict`].
    pub fn predict(&self, target: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
        self.0.predict(target, damaged)
    }

    /// The recipe as `--each` takes it: `zero --offset 1048576 --length 512`.
    /// [`Spec::parse`] of it gives back an equal spec.
    pub fn describe(&self) -> String {
        let mut words = vec![self.name().to_string()];
        if let serde_json::Value::Object(map) = self.params_json() {
            // In the order the command declares its arguments.
            for a in self.recipe().command().get_arguments() {
                let id = a.get_id().as_str();
                let Some(long) = a.get_long() else { continue };
                match map.get(id) {
                    None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => {
                    }
                    Some(serde_json::Value::Bool(true)) => words.push(format!("--{long}")),
                    Some(serde_json::Value::String(s)) => {
                        words.push(format!("--{long}"));
                        words.push(quote(s));
                    }
                    Some(v) => {
                        words.push(format!("--{long}"));
                        words.push(v.to_string());
                    }
                }
            }
        }
        words.join(" ")
    }

    /// The parameters with relative paths resolved against `dir`.
    pub fn resolve_paths(&self, dir: &Path) -> Spec {
        self.recipe().resolve_paths(self, dir)
    }

    /// Reads a recipe from a manifest table: `recipe` names it, every other
    /// key of `table` not in `reserved` is one of its parameters (the
    /// argument's id, e.g. `allow_unrepairable`). Values are TOML integers,
    /// strings (byte counts may carry a suffix) or booleans for flags.
    /// Errors name the key (`offset: …`) as an [`Error::Context`].
    pub fn from_table(table: &toml::Table, reserved: &[&str], dir: &Path) -> Result<Spec> {
        let name = match table.get("recipe") {
            Some(toml::Value::String(s)) => s.as_str(),
            Some(v) => {
                return Err(
                    Error::Usage(format!("expected a recipe name, found {}", v.type_str()))
                        .context("recipe"),
                )
            }
            None => return Err(Error::Usage("missing (required)".into()).context("recipe")),
        };
        let entry = find(name).ok_or_else(|| {
            Error::Usage(format!(
                "unknown recipe '{name}' (expected one of: {})",
                names()
            ))
            .context("recipe")
        })?;
        let cmd = entry.command();
        let mut argv: Vec<String> = vec![name.to_string()];
        for (key, value) in table {
            if key == "recipe" || reserved.contains(&key.as_str()) {
                continue;
            }
            let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == key.as_str()) else {
                let params: Vec<String> = fields_of(&cmd).into_iter().map(|f| f.name).collect();
                let other = RECIPES.iter().any(|r| {
                    r.command()
                        .get_arguments()
                        .any(|a| a.get_id() == key.as_str())
                });
                let msg = if other {
                    let takes = if params.is_empty() {
                        "it takes none".to_string()
                    } else {
                        format!("it takes: {}", params.join(", "))
                    };
                    format!("not a parameter of recipe '{name}' ({takes})")
                } else {
                    let mut expected: Vec<&str> = reserved.to_vec();
                    expected.push("recipe");
                    expected.extend(params.iter().map(String::as_str));
                    format!("unknown field (expected one of: {})", expected.join(", "))
                };
                return Err(Error::Usage(msg).context(key.clone()));
            };
            let long = format!("--{}", arg.get_long().unwrap_or(key));
            let field_err = |msg: String| Error::Usage(msg).context(key.clone());
            if !arg.get_action().takes_values() {
                match value {
                    toml::Value::Boolean(true) => argv.push(long),
                    toml::Value::Boolean(false) => {}
                    v => {
                        return Err(field_err(format!(
                            "expected true or false, found {}",
                            v.type_str()
                        )))
                    }
                }
                continue;
            }
            let text = match value {
                toml::Value::Integer(n) if *n < 0 => {
                    return Err(field_err(format!("{n} is negative")))
                }
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::String(s) => s.clone(),
                v => {
                    return Err(field_err(format!(
                        "expected an integer or a string, found {}",
                        v.type_str()
                    )))
                }
            };
            argv.push(long);
            argv.push(text);
        }
        // One parse through the recipe's own arguments; clap's error names
        // the argument, which names the field.
        let m = cmd
            .clone()
            .try_get_matches_from(&argv)
            .map_err(|e| field_error(&cmd, &e))?;
        Ok(entry.spec_from_matches(&m)?.resolve_paths(dir))
    }
}

impl PartialEq for Spec {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name() && self.params_json() == other.params_json()
    }
}

impl Eq for Spec {}

impl std::hash::Hash for Spec {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.describe().hash(state)
    }
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spec({})", self.describe())
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl serde::Serialize for Spec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", self.name())?;
        m.serialize_entry("params", &self.params_json())?;
        m.end()
    }
}

/// Every recipe name, comma-separated.
fn names() -> String {
    RECIPES
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The command that parses `NAME [ARGS]` for any recipe.
fn words_command() -> clap::Command {
    clap::Command::new("recipe")
        .no_binary_name(true)
        .disable_help_subcommand(true)
        .subcommand_required(true)
        .subcommands(RECIPES.iter().map(|r| r.command()))
}

/// Parses a recipe written like a command line, e.g.
/// `zero --offset 1M --length 512`, `write --offset 0 --from 'my file'`,
/// `ntfs-boot --partition 2`, `empty`. Words split at white space; single
/// and double quotes group, and a backslash escapes the next character.
/// Errors are one-line [`Error::Usage`]s.
pub fn parse_words(text: &str) -> Result<Spec> {
    let words = split_words(text)?;
    let m = words_command()
        .try_get_matches_from(&words)
        .map_err(|e| Error::Usage(format!("'{text}': {}", clap_line(&e))))?;
    let (name, sub) = m
        .subcommand()
        .ok_or_else(|| Error::Usage(format!("'{text}': no recipe named")))?;
    let entry = find(name).ok_or_else(|| Error::Usage(format!("unknown recipe '{name}'")))?;
    entry
        .spec_from_matches(sub)
        .map_err(|e| Error::Usage(format!("'{text}': {e}")))
}

/// clap's message without its usage and tip paragraphs, on one line.
pub(crate) fn clap_line(e: &clap::Error) -> String {
    let msg = e.to_string();
    let what: Vec<&str> = msg
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
        .map(str::trim)
        .collect();
    let what = what.join(" ");
    what.strip_prefix("error: ").unwrap_or(&what).to_string()
}

/// A clap error about a manifest table, said of the field (the argument's
/// id) it is about: `missing (required)`, the value parser's own message, or
/// clap's line (e.g. for conflicting fields).
fn field_error(cmd: &clap::Command, e: &clap::Error) -> Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        Some(ContextValue::Strings(v)) => v.first().map(String::as_str),
        _ => None,
    };
    // "--length <BYTES>": the argument whose long name that is.
    let id = arg
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.strip_prefix("--"))
        .and_then(|long| cmd.get_arguments().find(|a| a.get_long() == Some(long)))
        .map(|a| a.get_id().to_string());
    let msg = match (e.kind(), std::error::Error::source(e)) {
        (ErrorKind::MissingRequiredArgument, _) => "missing (required)".to_string(),
        (ErrorKind::ValueValidation | ErrorKind::InvalidValue, Some(src)) => src.to_string(),
        _ => clap_line(e),
    };
    match id {
        Some(id) => Error::Usage(msg).context(id),
        None => Error::Usage(msg),
    }
}

/// Splits `text` into words like a POSIX shell, without expansions.
pub fn split_words(text: &str) -> Result<Vec<String>> {
    let unclosed = || Error::Usage(format!("'{text}': unclosed quote or trailing backslash"));
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
                        None => return Err(unclosed()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => w.push(chars.next().ok_or_else(unclosed)?),
                        Some(c) => w.push(c),
                        None => return Err(unclosed()),
                    }
                }
            }
            '\\' => {
                let next = chars.next().ok_or_else(unclosed)?;
                word.get_or_insert_with(String::new).push(next);
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// `text` quoted for [`split_words`] when it holds spaces or quotes.
fn quote(text: &str) -> String {
    if !text.is_empty() && !text.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c)) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"write --offset 8s --from "a b"'c'\ d"#).unwrap(),
            ["write", "--offset", "8s", "--from", "a bc d"]
        );
        assert!(split_words("write 'x").is_err());
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
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
            let e = parse_words(bad).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad}: {e}");
            assert!(!e.to_string().contains('\n'), "{bad}: {e}");
        }
    }
}
