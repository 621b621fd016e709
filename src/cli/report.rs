//! Human-readable renderings of predictions, shared by `inject` and `verify`.

use qfault::fs::ntfs::NtfsfixOutcome;
use qfault::recipe::predict::NtfsPrediction;

/// Prints what `mount` and `ntfsfix` will do, each line prefixed by `indent`.
pub fn print_ntfs(p: &NtfsPrediction, indent: &str) {
    println!("{indent}mount:   {}", p.mount.detail);
    let fix = match p.ntfsfix.outcome {
        NtfsfixOutcome::NoRepairNeeded => "nothing to repair in the boot sector".to_string(),
        NtfsfixOutcome::Rewritten {
            lba,
            number_of_sectors,
            ..
        } => format!(
            "repairs it: \"The alternate bootsector is usable\", sector 0 rewritten from LBA {lba} of the partition ({number_of_sectors} sectors)"
        ),
        NtfsfixOutcome::Unrepairable => format!("FAILS: {}", p.ntfsfix.summary()),
    };
    println!("{indent}ntfsfix: {fix}");
    match (&p.after_repair, &p.after_repair_problem) {
        (Some(v), _) => println!(
            "{indent}after:   the volume mounts; label {}, root: {}",
            v.label
                .as_deref()
                .map_or("(none)".to_string(), |l| format!("\"{l}\"")),
            if v.root_entries.is_empty() {
                "(empty)".to_string()
            } else {
                v.root_entries.join(", ")
            }
        ),
        (None, Some(problem)) => {
            println!("{indent}after:   the repaired volume does not open: {problem}")
        }
        (None, None) => println!("{indent}after:   the volume stays unmountable"),
    }
}
