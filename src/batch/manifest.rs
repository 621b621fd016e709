//! The TOML manifest: which images and chains a batch produces.
//!
//! ```toml
//! [[image]]
//! base = "sample.qcow2"
//! output = "out/zeroed.qcow2"
//! recipe = "zero"
//! offset = "17M"
//! length = 512
//!
//! [[chain]]
//! base = "sample.qcow2"
//! dir = "out/chain"
//! links = [{ recipe = "empty" }, { recipe = "zero", offset = "1M", length = 512 }]
//! ```
//!
//! Relative paths resolve against the manifest's directory. Every field is
//! read by name; a misspelt or misplaced one is an error naming the entry and
//! the field (`manifest.toml: image[3].ofset: unknown field …`). The full
//! format is documented in the README ("Chains and batches").

use super::fields::{kind, Fields};
use super::job::{Entry, ImageJob, Job};
use crate::apply::OutputFormat;
use crate::chain::{ChainBuilder, NamePattern};
use crate::error::{Error, Result};
use crate::image::qcow2::header::CompressionType;
use crate::overlay::DEFAULT_CLUSTER_SIZE;
use crate::recipe::Spec;
use std::path::Path;
use toml::Table;

/// The fields of an `[[image]]` besides `recipe` and its parameters.
const IMAGE_FIELDS: &[&str] = &[
    "base",
    "output",
    "cluster_size",
    "absolute_backing",
    "output_format",
    "compress",
];

/// The fields of a `[[chain]]`.
const CHAIN_FIELDS: &[&str] = &[
    "base",
    "dir",
    "links",
    "depth",
    "each",
    "name_pattern",
    "cluster_size",
    "absolute_base",
];

/// Reads and parses the manifest at `path` (without opening any image).
/// Errors start with the manifest's path.
pub fn load(path: &Path) -> Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let entries = parse(&text, path)?;
    log::info!(
        "read manifest {} ({} bytes, {} entries)",
        path.display(),
        text.len(),
        entries.len()
    );
    Ok(entries)
}

/// Parses manifest `text` as if read from `path` (relative paths resolve
/// against its directory; errors start with it).
pub fn parse(text: &str, path: &Path) -> Result<Vec<Entry>> {
    // "" for a bare file name, so paths stay as written ("a.qcow2", not "./a.qcow2").
    let dir = path.parent().unwrap_or(Path::new(""));
    parse_in(text, dir).map_err(|e| e.context(path.display().to_string()))
}

fn parse_in(text: &str, dir: &Path) -> Result<Vec<Entry>> {
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| Error::Usage(toml_error(text, &e)))?;
    if let Some(k) = table
        .keys()
        .find(|k| !["image", "chain"].contains(&k.as_str()))
    {
        return Err(Error::Usage(format!(
            "{k}: unknown top-level key (expected [[image]] or [[chain]] tables)"
        )));
    }
    let mut entries = Vec::new();
    for (key, parse_one) in [
        ("image", parse_image as fn(Fields, &Path) -> Result<Job>),
        ("chain", parse_chain),
    ] {
        let Some(v) = table.get(key) else { continue };
        let items = v.as_array().ok_or_else(|| {
            Error::Usage(format!(
                "{key}: expected an array of tables ([[{key}]]), found {}",
                kind(v)
            ))
        })?;
        for (i, item) in items.iter().enumerate() {
            let name = format!("{key}[{i}]");
            let job = parse_one(Fields::new(item, &name)?, dir)?;
            entries.push(Entry { name, job });
        }
    }
    if entries.is_empty() {
        return Err(Error::Usage(
            "no [[image]] or [[chain]] entries: nothing to do".into(),
        ));
    }
    Ok(entries)
}

/// A TOML syntax error on one line: where, and what.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().trim().replace('\n', ", ");
    match e.span() {
        Some(span) => {
            let end = (0..=span.start.min(text.len()))
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            let before = &text[..end];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("not valid TOML at line {line}, column {column}: {what}")
        }
        None => format!("not valid TOML: {what}"),
    }
}

fn parse_image(mut f: Fields, dir: &Path) -> Result<Job> {
    let base = f.required_path("base", dir)?;
    let output = f.required_path("output", dir)?;
    let cluster_size = cluster_size(&mut f)?;
    let absolute_backing = f.boolean("absolute_backing")?.unwrap_or(false);
    let output_format = output_format(&mut f)?;
    if absolute_backing && output_format != OutputFormat::Overlay {
        return Err(f.error(
            "absolute_backing",
            format!(
                "applies to overlays; output_format {} has no backing file",
                output_format.name()
            ),
        ));
    }
    let recipe = recipe(&f, IMAGE_FIELDS, dir)?;
    Ok(Job::Image(ImageJob {
        base,
        output,
        recipe,
        cluster_size,
        absolute_backing,
        output_format,
    }))
}

/// `output_format` ("overlay", "raw", "qcow2-standalone"; default overlay)
/// and `compress` ("zlib", "zstd"; qcow2-standalone only).
fn output_format(f: &mut Fields) -> Result<OutputFormat> {
    let compression = match f.string("compress")? {
        None => None,
        Some("zlib") => Some(CompressionType::Zlib),
        Some("zstd") => Some(CompressionType::Zstd),
        Some(other) => {
            return Err(f.error(
                "compress",
                format!("{other:?} is not a compression (expected \"zlib\" or \"zstd\")"),
            ))
        }
    };
    let name = f.string("output_format")?.unwrap_or("overlay").to_string();
    OutputFormat::parse(&name, compression).map_err(|e| {
        let key = if matches!(name.as_str(), "overlay" | "raw" | "qcow2-standalone") {
            "compress"
        } else {
            "output_format"
        };
        let msg = match e {
            Error::Usage(m) => m,
            e => e.to_string(),
        };
        f.error(key, msg)
    })
}

/// The recipe of a table: `recipe` and its parameters (every key not in
/// `reserved`), read through the recipe registry.
fn recipe(f: &Fields, reserved: &[&str], dir: &Path) -> Result<Spec> {
    Spec::from_table(f.table(), reserved, dir).map_err(|e| super::within(f.at(), e))
}

fn parse_chain(mut f: Fields, dir: &Path) -> Result<Job> {
    let base = f.required_path("base", dir)?;
    let out_dir = f.required_path("dir", dir)?;
    let mut b = ChainBuilder::new(base, out_dir);
    if let Some(p) = f.string("name_pattern")? {
        b = b.name_pattern(
            NamePattern::parse(p)
                .map_err(|e| super::within(&format!("{}.name_pattern", f.at()), e))?,
        );
    }
    b = b.cluster_size(cluster_size(&mut f)?);
    b = b.absolute_base(f.boolean("absolute_base")?.unwrap_or(false));
    let at = f.at().to_string();
    match (f.has("links"), f.has("depth")) {
        (true, true) => {
            return Err(f.error("depth", "give either links or depth (with each), not both"))
        }
        (false, false) => {
            return Err(f.error(
                "links",
                "missing: give links = [{ recipe = ... }, ...] or depth = N (with each)",
            ))
        }
        (true, false) => {
            if f.has("each") {
                return Err(f.error("each", "each goes with depth, not with links"));
            }
            let links = f.array("links")?.unwrap_or_default();
            for (i, l) in links.iter().enumerate() {
                let lf = Fields::new(l, format!("{at}.links[{i}]"))?;
                b = b.link(recipe(&lf, &[], dir)?);
            }
        }
        (false, true) => {
            let depth = f.integer("depth")?.unwrap_or(0);
            let depth = usize::try_from(depth).map_err(|_| f.error("depth", "too large"))?;
            let recipe = match f.value("each") {
                None => Spec::parse("empty")?,
                Some(v) => recipe(&Fields::new(v, format!("{at}.each"))?, &[], dir)?,
            };
            b = b.depth(depth, recipe);
        }
    }
    f.finish(CHAIN_FIELDS)?;
    Ok(Job::Chain(b))
}

fn cluster_size(f: &mut Fields) -> Result<u64> {
    let cs = f.bytes("cluster_size")?.unwrap_or(DEFAULT_CLUSTER_SIZE);
    if !cs.is_power_of_two() || !(512..=2 << 20).contains(&cs) {
        return Err(f.error(
            "cluster_size",
            format!("{cs} is not a power of two from 512 to 2097152 bytes"),
        ));
    }
    Ok(cs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::job::Job;

    fn err(text: &str) -> String {
        parse(text, Path::new("dir/m.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn entries_resolve_against_the_manifest_dir() {
        let e = parse(
            r#"
[[chain]]
base = "b.qcow2"
dir = "/abs/c"
depth = 3
each = { recipe = "zero", offset = "1M", length = 512 }

[[image]]
base = "b.qcow2"
output = "out/z.qcow2"
recipe = "write"
offset = 0
from = "payload.bin"
"#,
            Path::new("dir/m.toml"),
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, "image[0]");
        let Job::Image(j) = &e[0].job else { panic!() };
        assert_eq!(j.base, Path::new("dir/b.qcow2"));
        assert_eq!(j.output, Path::new("dir/out/z.qcow2"));
        assert_eq!(
            j.recipe,
            Spec::parse("write --offset 0 --from dir/payload.bin").unwrap()
        );
        let Job::Chain(c) = &e[1].job else { panic!() };
        assert_eq!(e[1].name, "chain[0]");
        assert_eq!(c.len(), 3);
        assert_eq!(c.outputs()[2], Path::new("/abs/c/link-0003.qcow2"));
    }

    #[test]
    fn errors_name_the_entry_and_the_field() {
        let img = |extra: &str| {
            format!("[[image]]\nbase = \"b\"\noutput = \"o\"\nrecipe = \"zero\"\noffset = 0\nlength = 1\n{extra}")
        };
        let two = format!("{}\n{}", img(""), img("ofset = 3"));
        assert!(
            err(&two).starts_with("dir/m.toml: image[1].ofset: unknown field"),
            "{}",
            err(&two)
        );
        assert!(
            err(&img("from = \"x\"")).contains("image[0].from: not a parameter of recipe 'zero'")
        );
        assert!(err(&img("cluster_size = 1000")).contains("image[0].cluster_size: 1000 is not"));
        let bad_len = "[[image]]\nbase = \"b\"\noutput = \"o\"\nrecipe = \"zero\"\noffset = 0\nlength = \"1X\"";
        assert!(
            err(bad_len).contains("image[0].length: '1X': unknown unit"),
            "{}",
            err(bad_len)
        );
        let no_recipe = "[[image]]\nbase = \"b\"\noutput = \"o\"";
        assert!(err(no_recipe).contains("image[0].recipe: missing"));
        let link = "[[chain]]\nbase = \"b\"\ndir = \"d\"\nlinks = [{ recipe = \"empty\" }, { recipe = \"zap\" }]";
        assert!(
            err(link).contains("chain[0].links[1].recipe: unknown recipe 'zap'"),
            "{}",
            err(link)
        );
        let both = "[[chain]]\nbase = \"b\"\ndir = \"d\"\nlinks = []\ndepth = 2";
        assert!(err(both).contains("chain[0].depth: give either"));
        let pat = "[[chain]]\nbase = \"b\"\ndir = \"d\"\ndepth = 2\nname_pattern = \"x\"";
        assert!(
            err(pat).contains("chain[0].name_pattern: name pattern 'x'"),
            "{}",
            err(pat)
        );
        assert!(err("[[imag]]\nbase = 1").contains("imag: unknown top-level key"));
        assert!(err("x = ").contains("dir/m.toml: not valid TOML"));
        assert!(!err("x = ").contains('\n'));
        assert!(err("").contains("nothing to do"));
    }
}
