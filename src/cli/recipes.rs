//! `qfault recipes`: the catalogue, generated from the recipe registry.

use super::report::{outcome_line, print_document};
use qfault::recipe::RECIPES;

/// List the recipes: what each damages, the predicted outcome per tool,
/// the repair, the preconditions and the parameters.
#[derive(Debug, clap::Args)]
#[command(after_help = footer!("{\"schema\": 1, \"recipes\": [{\"name\", \"about\", \"targets\", \"damage\", \"outcomes\", \"repair\", \"preconditions\", \"repeatable\", \"fields\": [{\"name\", \"option\", \"type\", \"required\", \"default\", \"help\"}]}]}."))]
pub struct Args {
    /// Print JSON (schema: docs/json.md): {schema, recipes: [...]}.
    #[arg(long)]
    pub json: bool,
}

/// The catalogue as JSON values, one per recipe.
pub fn catalogue_json() -> Vec<serde_json::Value> {
    RECIPES
        .iter()
        .map(|r| {
            let c = r.catalogue();
            serde_json::json!({
                "name": r.name(),
                "about": r.about(),
                "targets": c.targets,
                "damage": c.damage,
                "outcomes": c.outcomes,
                "repair": c.repair,
                "preconditions": c.preconditions,
                "repeatable": r.repeatable(),
                "fields": r.fields(),
            })
        })
        .collect()
}

/// Runs `qfault recipes`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.json {
        return print_document(serde_json::json!({ "recipes": catalogue_json() }), None);
    }
    for (i, r) in RECIPES.iter().enumerate() {
        if i > 0 {
            outln!();
        }
        let c = r.catalogue();
        outln!("{}: {}", r.name(), r.about());
        outln!("  targets: {}", c.targets);
        outln!("  damage:  {}", c.damage);
        for o in &c.outcomes {
            outln!("  {}", outcome_line(o));
        }
        if let Some(rep) = c.repair {
            outln!("  repair command: {rep}");
        }
        for p in &c.preconditions {
            outln!("  requires: {p}");
        }
        let fields = r.fields();
        if !fields.is_empty() {
            let opts: Vec<String> = fields
                .iter()
                .map(|f| {
                    if f.kind == "flag" {
                        format!("[{}]", f.option)
                    } else if f.required {
                        format!("{} {}", f.option, f.kind.to_uppercase())
                    } else {
                        format!("[{} {}]", f.option, f.kind.to_uppercase())
                    }
                })
                .collect();
            outln!(
                "  usage:   qfault inject {} BASE -o OVERLAY {}",
                r.name(),
                opts.join(" ")
            );
        }
        if !r.repeatable() {
            outln!("  a chain applies it once (it cannot be applied on top of itself)");
        }
    }
    Ok(())
}
