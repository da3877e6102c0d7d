//! A plan written out as an explicit recipe (TOML): one rule per (role,
//! type) group with its layer set, a `name` rule for tensors outside the
//! layers. It is an output for review and reuse (`quantmix recipe`,
//! `quantmix plan`); planning never reads it back.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Plan, Reason};
use crate::gguf::GgmlType;
use crate::recipe::layers::LayerSet;
use crate::recipe::roles;

/// The explicit recipe that reproduces `plan`, `header` as its leading
/// comment.
pub fn explicit_recipe(plan: &Plan, header: &str) -> String {
    // Group quantized tensors by (role, type) with their layers.
    let mut groups: BTreeMap<(String, GgmlType), Vec<u32>> = BTreeMap::new();
    let mut singles: Vec<(String, GgmlType)> = Vec::new();
    let mut counts: BTreeMap<GgmlType, usize> = BTreeMap::new();
    for c in &plan.tensors {
        if matches!(c.reason, Reason::NotQuantized(_)) {
            continue;
        }
        *counts.entry(c.ty).or_default() += 1;
        match roles::layer_of(&c.name) {
            Some(l) => groups.entry((roles::role_of(&c.name).to_string(), c.ty)).or_default().push(l),
            None => singles.push((c.name.clone(), c.ty)),
        }
    }
    let default = counts.iter().max_by_key(|(_, n)| **n).map(|(t, _)| *t).unwrap_or(GgmlType::F16);
    let mut s = String::new();
    for line in header.lines() {
        let _ = writeln!(s, "# {line}");
    }
    let _ = writeln!(s, "default = \"{default}\"\n");
    for (name, ty) in singles {
        if ty == default {
            continue;
        }
        let _ = writeln!(s, "[[rule]]\nname = \"{name}\"\ntype = \"{ty}\"\n");
    }
    for ((role, ty), mut layers) in groups {
        if ty == default {
            continue;
        }
        layers.sort_unstable();
        let _ =
            writeln!(s, "[[rule]]\nrole = \"{role}\"\nlayers = \"{}\"\ntype = \"{ty}\"\n", LayerSet::describe(&layers));
    }
    s
}

#[cfg(test)]
mod tests {
    use crate::gguf::GgufFile;
    use crate::recipe::{ModelInfo, Preset, Recipe};

    /// The explicit recipe of every preset gives the preset's plan again.
    #[test]
    fn explicit_recipes_reproduce_their_plans() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/presets/synth12-llama-f16.gguf");
        let g = GgufFile::open(std::path::Path::new(path)).unwrap();
        let info = ModelInfo::from_metadata(g.metadata(), g.tensors());
        for &p in Preset::ALL {
            let plan = match super::super::resolve(&Recipe::preset(p), &info, g.tensors(), None) {
                Ok(plan) => plan,
                // IQ3_XS, IQ3_XXS and the IQ2 and IQ1 presets put IQ3_XXS / IQ2_* / IQ1_* on
                // synth12's 256-wide rows, and Q2_K_S its Q2_K: refused without an imatrix
                // (tests/imatrix_llama_quantize.rs checks them with one).
                Err(e)
                    if matches!(
                        p,
                        Preset::IQ3_XS
                            | Preset::IQ3_XXS
                            | Preset::IQ2_M
                            | Preset::IQ2_S
                            | Preset::IQ2_XS
                            | Preset::IQ2_XXS
                            | Preset::IQ1_M
                            | Preset::IQ1_S
                            | Preset::Q2_K_S
                    ) && e.to_string().contains("requires an importance matrix") =>
                {
                    continue
                }
                Err(e) => panic!("{}: {e}", p.name()),
            };
            let text = super::explicit_recipe(&plan, "test");
            let again = Recipe::from_toml_str(&text, "generated").unwrap();
            let check = super::super::resolve(&again, &info, g.tensors(), None).unwrap();
            for (x, y) in plan.tensors.iter().zip(&check.tensors) {
                assert_eq!(x.ty, y.ty, "{} {}", p.name(), x.name);
            }
        }
    }
}
