//! The AuthZEN scenarios' directory and policies, written as an
//! `idplane apply` document: `users` people holding two of 50 roles each,
//! and `policies` Cedar policies for one application (`Bench`, 20 actions)
//! in the shapes real policy sets have: role grants with a condition,
//! per-person grants, guarded forbids and a few unconstrained heads.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const ROLES: u64 = 50;
pub const ACTIONS: u64 = 20;

/// SplitMix64: a deterministic stream of pseudo-random numbers, so every
/// run loads the same fixture and sends the same requests.
pub fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Draws(u64);

impl Draws {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = mix(self.0);
        self.0 % n
    }
}

/// Writes the fixture under `dir`; returns the apply document's path.
pub fn write(dir: &Path, users: u64, policies: u64) -> std::io::Result<PathBuf> {
    let mut draws = Draws(7);
    let policy_dir = dir.join("policy");
    std::fs::create_dir_all(policy_dir.join("schemas"))?;
    std::fs::create_dir_all(policy_dir.join("policies"))?;
    let names: Vec<String> = (0..ACTIONS).map(|j| format!("a{j}")).collect();
    std::fs::write(
        policy_dir.join("schemas/Bench.cedarschema"),
        format!(
            "namespace Bench {{\n  entity Doc = {{ owner: String, level: Long }};\n  \
             action {} appliesTo {{ principal: [Idplane::User], resource: [Doc], \
             context: {{ ip?: String }} }};\n}}\n",
            names.join(", ")
        ),
    )?;
    // Action a0 is what everyone may do (bar the forbids): the allow-heavy mix.
    let mut text = String::from(
        "@id(\"everyone-a0\")\npermit (principal, action == Bench::Action::\"a0\", resource is Bench::Doc);\n",
    );
    for n in 0..policies.saturating_sub(1) {
        let kind = draws.below(100);
        let action = format!("Bench::Action::\"a{}\"", draws.below(ACTIONS));
        let policy = if kind < 50 {
            format!(
                "permit (principal in Idplane::Role::\"r{}\", action == {action}, resource is Bench::Doc) \
                 when {{ resource.level <= {} }}",
                draws.below(ROLES),
                draws.below(10)
            )
        } else if kind < 80 {
            format!(
                "permit (principal == Idplane::User::\"u{}\", action in [Bench::Action::\"a{}\", \
                 Bench::Action::\"a{}\"], resource)",
                draws.below(users),
                draws.below(ACTIONS),
                draws.below(ACTIONS)
            )
        } else if kind < 99 {
            format!(
                "forbid (principal, action == {action}, resource) when {{ resource.level > 8 }} \
                 unless {{ principal in Idplane::Role::\"r{}\" }}",
                draws.below(ROLES)
            )
        } else {
            format!(
                "permit (principal, action, resource) when {{ resource.owner == principal.name \
                 && resource.level < {} }}",
                draws.below(3)
            )
        };
        let _ = writeln!(text, "\n@id(\"p{n}\")\n{policy};");
    }
    std::fs::write(policy_dir.join("policies/bench.cedar"), text)?;
    // Every deny is logged; allows are sampled, as a busy deployment would.
    std::fs::write(
        policy_dir.join("settings.json"),
        r#"{"decision_log": {"allow_sample_rate": 0.01}}"#,
    )?;

    let mut doc = String::from("version: 1\ntenants:\n  - name: default\n    users:\n");
    for i in 0..users {
        let _ = writeln!(doc, "      - {{username: u{i}}}");
    }
    doc.push_str("    roles:\n");
    for k in 0..ROLES {
        let _ = writeln!(doc, "      - {{name: r{k}}}");
    }
    doc.push_str("    assignments:\n");
    for i in 0..users {
        let first = draws.below(ROLES);
        let second = (first + 1 + draws.below(ROLES - 1)) % ROLES;
        for k in [first, second] {
            let _ = writeln!(doc, "      - {{role: r{k}, principal: u{i}}}");
        }
    }
    doc.push_str("    policy:\n      directory: ./policy\n");
    let path = dir.join("idplane.yaml");
    std::fs::write(&path, doc)?;
    Ok(path)
}
