//! One prediction model for every recipe: what each real tool will do with
//! the damaged guest, as a list of tool outcomes.
//!
//! The same data is rendered for humans by the CLI and serialized as JSON
//! (`docs/json.md`, "Prediction"): every outcome is
//! `{"role", "tool", "command", "result", "exit_code", "message"}`.

use serde::{Serialize, Serializer};

/// What a tool is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// What `blkid -p` reports for the target.
    Identify,
    /// Mounting the damaged target.
    Mount,
    /// A read-only checker (`e2fsck -n`, `ntfsfix -n`, `sgdisk -v`, ...).
    Check,
    /// The repair tool.
    Repair,
    /// Mounting (or reading) the target after the repair.
    AfterRepair,
}

impl Role {
    /// The role as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Identify => "identify",
            Role::Mount => "mount",
            Role::Check => "check",
            Role::Repair => "repair",
            Role::AfterRepair => "after-repair",
        }
    }
}

/// The predicted result of one tool run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `identify`: the filesystem type blkid reports (`None`: nothing).
    Identifies(Option<String>),
    /// `mount`/`after-repair`: mounts read-write.
    ReadWrite,
    /// `mount`/`after-repair`: mounts read-only only (possibly a silent fallback).
    ReadOnly,
    /// `mount`/`after-repair`: refused.
    Refused,
    /// `check`: nothing to report.
    Clean,
    /// `check`: reports the damage.
    ReportsDamage,
    /// `repair`: repairs it.
    Repairs,
    /// `repair`: cannot repair it.
    CannotRepair,
    /// `repair`: nothing needs repairing.
    NotNeeded,
    /// `mount`/`after-repair`: a reader that does not mount (`sfdisk -d`,
    /// `parted print`, `mdir`) reads it.
    Reads,
}

impl Verdict {
    /// The result as written in JSON (`None` for "identifies nothing").
    pub fn as_str(&self) -> Option<&str> {
        Some(match self {
            Verdict::Identifies(t) => return t.as_deref(),
            Verdict::ReadWrite => "read-write",
            Verdict::ReadOnly => "read-only",
            Verdict::Refused => "refused",
            Verdict::Clean => "clean",
            Verdict::ReportsDamage => "reports-damage",
            Verdict::Repairs => "repairs",
            Verdict::CannotRepair => "cannot-repair",
            Verdict::NotNeeded => "not-needed",
            Verdict::Reads => "reads",
        })
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            Some(v) => s.serialize_str(v),
            None => s.serialize_none(),
        }
    }
}

/// One tool's predicted behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Outcome {
    /// What the tool is asked to do.
    pub role: Role,
    /// The tool (`blkid`, `ntfs-3g`, `ntfsfix`, ...).
    pub tool: String,
    /// The command line, with `PART` for the partition (or disk) image and
    /// `MNT` for a mount point.
    pub command: String,
    /// What happens.
    pub result: Verdict,
    /// The tool's predicted exit code.
    pub exit_code: i32,
    /// Its key line of output, when it prints one worth matching.
    pub message: Option<String>,
    /// The tool and version this prediction was verified against
    /// (`"ntfs-3g 2022.10.3"`, see [`VERIFIED_WITH`]); other versions may
    /// print other messages.
    pub verified_with: Option<String>,
}

/// The tool versions every prediction was verified against with the real
/// tools (Debian 12 packages; `shared/catalogue/README.md` and the
/// real-tool tests): tool name, then package and version.
pub const VERIFIED_WITH: &[(&str, &str)] = &[
    ("blkid", "util-linux 2.38.1"),
    ("mount", "util-linux 2.38.1"),
    ("sfdisk", "util-linux 2.38.1"),
    ("fdisk", "util-linux 2.38.1"),
    ("ntfs-3g", "ntfs-3g 2022.10.3"),
    ("ntfsfix", "ntfs-3g 2022.10.3"),
    ("ntfsresize", "ntfs-3g 2022.10.3"),
    ("ntfsclone", "ntfs-3g 2022.10.3"),
    ("ntfsinfo", "ntfs-3g 2022.10.3"),
    ("e2fsck", "e2fsprogs 1.47.0"),
    ("xfs_repair", "xfsprogs 6.1.0"),
    ("btrfs", "btrfs-progs 6.2"),
    ("cryptsetup", "cryptsetup 2.6.1"),
    ("sgdisk", "gdisk 1.0.9"),
    ("gdisk", "gdisk 1.0.9"),
    ("parted", "parted 3.5"),
    ("fsck.fat", "dosfstools 4.2"),
    ("fsck.exfat", "exfatprogs 1.2.0"),
    ("exfat-fuse", "exfat-fuse 1.3.0"),
    ("mtools", "mtools 4.0.32"),
];

/// The package and version `tool`'s predictions were verified against.
pub fn verified_with(tool: &str) -> Option<&'static str> {
    VERIFIED_WITH
        .iter()
        .find(|(t, _)| *t == tool)
        .map(|(_, v)| *v)
}

impl Outcome {
    /// An outcome; `message` may be empty (no key line).
    pub fn new(
        role: Role,
        tool: &str,
        command: &str,
        result: Verdict,
        exit_code: i32,
        message: &str,
    ) -> Self {
        Outcome {
            role,
            tool: tool.into(),
            command: command.into(),
            result,
            exit_code,
            message: (!message.is_empty()).then(|| message.to_string()),
            verified_with: verified_with(tool).map(str::to_string),
        }
    }

    /// `blkid -p PART`: exit 0 and the type, or exit 2 and nothing.
    pub fn blkid(fstype: Option<&str>) -> Self {
        Outcome::new(
            Role::Identify,
            "blkid",
            "blkid -p PART",
            Verdict::Identifies(fstype.map(str::to_string)),
            if fstype.is_some() { 0 } else { 2 },
            "",
        )
    }
}

/// Everything predicted about one target.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Prediction {
    /// Each tool's outcome, in the order a person would run them.
    pub outcomes: Vec<Outcome>,
    /// Whether the repair restores the target byte for byte as in the base.
    pub byte_identical_after_repair: bool,
    /// Details for people (what the repaired volume holds, which sector the
    /// repair copies); not part of the tools' outcomes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Prediction {
    /// The first outcome with `role`.
    pub fn outcome(&self, role: Role) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.role == role)
    }

    /// The outcomes in one line: `blkid nothing (exit 2), ntfs-3g refused
    /// (exit 12), …`, or `no tool outcomes`.
    pub fn one_line(&self) -> String {
        let parts: Vec<String> = self
            .outcomes
            .iter()
            .map(|o| {
                format!(
                    "{} {} (exit {})",
                    o.tool,
                    o.result.as_str().unwrap_or("nothing"),
                    o.exit_code
                )
            })
            .collect();
        if parts.is_empty() {
            "no tool outcomes".into()
        } else {
            parts.join(", ")
        }
    }

    /// Whether a named repair brings the target back: one of the repairs
    /// repairs (or none is needed) and the first after-repair outcome is not
    /// refused.
    pub fn repairable(&self) -> bool {
        let mut repairs = self
            .outcomes
            .iter()
            .filter(|o| o.role == Role::Repair)
            .peekable();
        let repair_ok = repairs.peek().is_none()
            || repairs.any(|o| matches!(o.result, Verdict::Repairs | Verdict::NotNeeded));
        let after_ok = self
            .outcome(Role::AfterRepair)
            .is_none_or(|o| o.result != Verdict::Refused);
        repair_ok && after_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialize_with_the_documented_fields() {
        let o = Outcome::new(
            Role::AfterRepair,
            "ntfs-3g",
            "ntfs-3g PART MNT",
            Verdict::ReadWrite,
            0,
            "",
        );
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"role": "after-repair", "tool": "ntfs-3g",
                "command": "ntfs-3g PART MNT", "result": "read-write",
                "exit_code": 0, "message": null,
                "verified_with": "ntfs-3g 2022.10.3"})
        );
        let b = serde_json::to_value(Outcome::blkid(None)).unwrap();
        assert_eq!(b["result"], serde_json::Value::Null);
        assert_eq!(b["exit_code"], 2);
    }

    #[test]
    fn every_catalogued_tool_has_a_verified_version() {
        for r in crate::recipe::RECIPES {
            for o in r.catalogue().outcomes {
                assert!(
                    o.verified_with.is_some(),
                    "{}: add {} to VERIFIED_WITH",
                    r.name(),
                    o.tool
                );
            }
        }
    }

    #[test]
    fn repairable_needs_a_repair_that_works() {
        let mut p = Prediction::default();
        assert!(p.repairable());
        p.outcomes.push(Outcome::new(
            Role::Repair,
            "ntfsfix",
            "ntfsfix PART",
            Verdict::CannotRepair,
            1,
            "",
        ));
        assert!(!p.repairable());
    }
}
