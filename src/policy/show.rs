//! `tollgate policy show`: the policy as it applies in one namespace, with what each override
//! changed, for the reviewer asking "what does team X get?". The model is serialized for
//! `--format json`; [`text`] renders it for people. Pure.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Level, Policy, RuleId};

/// The resolved policy, field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// `metadata.name`.
    pub name: String,
    /// Where it was read from.
    pub origin: String,
    /// The namespace it was resolved for; `None`: the cluster-wide policy.
    pub namespace: Option<String>,
    /// The overrides applied, in order: `file:line (namespaces …)`; cluster-wide, every
    /// override the policy has (each applies in its namespaces only).
    pub overrides: Vec<String>,
    /// `spec.locked`.
    pub locked: Vec<RuleId>,
    /// Every rule's level.
    pub rules: Vec<RuleView>,
    /// The approved registries, as reports name them (`host/path/`, `host/path`).
    pub registries: Vec<Sourced>,
    /// The forbidden tag globs.
    pub forbidden_tags: Vec<Sourced>,
    /// The exemptions: selector, reason, expiry, `file:line`.
    pub exemptions: Vec<Sourced>,
}

/// A rule's level, and its cluster-wide level when an override changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    /// The rule.
    pub rule_id: RuleId,
    /// Its level here.
    pub level: Level,
    /// The cluster-wide level, when an override set another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_wide: Option<Level>,
    /// Whether `spec.locked` lists it.
    pub locked: bool,
}

/// An entry, and whether an override added it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sourced {
    /// The entry, as reports show it.
    pub entry: String,
    /// `true`: added by one of the overrides applied.
    pub from_override: bool,
}

/// `policy` as it applies in `namespace` (`None`: cluster-wide).
pub fn view(policy: &Policy, namespace: Option<&str>) -> PolicyView {
    let scoped = namespace.map(|ns| policy.in_namespace(ns));
    let p: &Policy = scoped.as_deref().unwrap_or(policy);
    let added = |all: usize, base: usize, i: usize| all > base && i >= base;
    let origin = p.origin().to_owned();
    PolicyView {
        name: p.name().to_owned(),
        origin: origin.clone(),
        namespace: namespace.map(str::to_owned),
        overrides: match namespace {
            Some(_) => p.applied().to_vec(),
            None => policy.overrides(),
        }
        .iter()
        .map(|a| {
            format!(
                "{origin}:{} (namespaces {})",
                a.pos.line,
                a.namespaces.join(", ")
            )
        })
        .collect(),
        locked: policy.locked().to_vec(),
        rules: RuleId::ALL
            .iter()
            .map(|&rule| RuleView {
                rule_id: rule,
                level: p.level(rule),
                cluster_wide: (p.level(rule) != policy.level(rule)).then(|| policy.level(rule)),
                locked: policy.locked().contains(&rule),
            })
            .collect(),
        registries: p
            .registries()
            .iter()
            .enumerate()
            .map(|(i, r)| Sourced {
                entry: r.shown(),
                from_override: added(p.registries().len(), policy.registries().len(), i),
            })
            .collect(),
        forbidden_tags: p
            .forbidden_tags()
            .iter()
            .enumerate()
            .map(|(i, t)| Sourced {
                entry: t.as_str().to_owned(),
                from_override: added(p.forbidden_tags().len(), policy.forbidden_tags().len(), i),
            })
            .collect(),
        exemptions: p
            .exemptions()
            .iter()
            .enumerate()
            .map(|(i, e)| Sourced {
                entry: format!(
                    "{} at {origin}:{}: {}{}",
                    e.selector(),
                    e.pos().line,
                    e.reason(),
                    e.expires()
                        .map(|x| format!(" (until {})", x.written))
                        .unwrap_or_default()
                ),
                from_override: added(p.exemptions().len(), policy.exemptions().len(), i),
            })
            .collect(),
    }
}

/// The view for people.
pub fn text(v: &PolicyView) -> String {
    let mut out = String::new();
    let _ = match &v.namespace {
        Some(ns) => writeln!(out, "policy {} ({}) in namespace {ns}", v.name, v.origin),
        None => writeln!(out, "policy {} ({}), cluster-wide", v.name, v.origin),
    };
    match (&v.namespace, v.overrides.is_empty()) {
        (Some(_), true) => {
            let _ = writeln!(out, "  no override applies: the cluster-wide policy");
        }
        (Some(_), false) => {
            for o in &v.overrides {
                let _ = writeln!(out, "  override {o}");
            }
        }
        (None, true) => {}
        (None, false) => {
            let _ = writeln!(
                out,
                "  overrides, each applied only in its namespaces (--namespace NS shows one):"
            );
            for o in &v.overrides {
                let _ = writeln!(out, "    {o}");
            }
        }
    }
    let _ = writeln!(out, "rules:");
    for r in &v.rules {
        let mut notes = Vec::new();
        if let Some(c) = r.cluster_wide {
            notes.push(format!("cluster-wide {c}"));
        }
        if r.locked {
            notes.push("locked".to_owned());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join(", "))
        };
        let _ = writeln!(
            out,
            "  {:<26} {}{notes}",
            r.rule_id.as_str(),
            r.level.as_str()
        );
    }
    for (title, list) in [
        ("registries", &v.registries),
        ("forbidden tags", &v.forbidden_tags),
        ("exemptions", &v.exemptions),
    ] {
        if list.is_empty() {
            let _ = writeln!(out, "{title}: none");
            continue;
        }
        let _ = writeln!(out, "{title}:");
        for s in list {
            let mark = if s.from_override { "  (override)" } else { "" };
            let _ = writeln!(out, "  {}{mark}", s.entry);
        }
    }
    out
}
