//! What a compiled program is, in the terms of a deployment manifest (`nfcc_bpf::manifest`):
//! its rules by statistics slot, every map with its role and owner, and where each set lives.
//! The driver writes this into the manifest at load time, so commands on a deployed policy
//! read the layout the compiler that built it chose, never a recompilation.

use crate::compiled::CompiledProgram;
use crate::ir::MapPurpose;
use nfcc_bpf::layout::object_map_name;
use nfcc_bpf::manifest::{MapEntry, MapRole, PoolEntry, RuleEntry, Stage};
use nfcc_dsl::checked as ck;

/// A map's role in the manifest's terms.
pub fn role(purpose: MapPurpose) -> MapRole {
    match purpose {
        MapPurpose::ExactSet => MapRole::ExactSet,
        MapPurpose::PrefixSet => MapRole::PrefixSet,
        MapPurpose::PrefixHash => MapRole::PrefixHash,
        MapPurpose::PrefixLengths => MapRole::PrefixLengths,
        MapPurpose::RuleStats => MapRole::RuleStats,
        MapPurpose::Counter => MapRole::Counter,
        MapPurpose::Limiter => MapRole::Limiter,
        MapPurpose::RedirectTargets => MapRole::RedirectTargets,
        MapPurpose::XskSockets => MapRole::XskSockets,
        MapPurpose::Table => MapRole::Table,
        MapPurpose::Samples => MapRole::Samples,
        MapPurpose::Maglev => MapRole::Maglev,
        MapPurpose::PoolBackends => MapRole::PoolBackends,
        MapPurpose::PoolActive => MapRole::PoolActive,
        MapPurpose::Flows => MapRole::Flows,
        MapPurpose::MergedRules => MapRole::MergedRules,
        MapPurpose::ClassifierNodes => MapRole::ClassifierNodes,
        MapPurpose::ClassifierBoxes => MapRole::ClassifierBoxes,
        MapPurpose::ClassifierTuples => MapRole::ClassifierTuples,
        MapPurpose::ClassifierSelect => MapRole::ClassifierSelect,
        MapPurpose::Clock => MapRole::Clock,
    }
}

/// The declaration a map belongs to, from its IR name (`set_NAME[_wN][_lengths]`,
/// `cnt_NAME`, `lim_NAME`, `tbl_NAME`, `pool_NAME`).
fn owner(policy: &ck::Policy, ir_name: &str, purpose: MapPurpose) -> Option<String> {
    let names: Vec<&str> = match purpose {
        MapPurpose::ExactSet
        | MapPurpose::PrefixSet
        | MapPurpose::PrefixHash
        | MapPurpose::PrefixLengths => policy.sets.iter().map(|s| s.name.as_str()).collect(),
        MapPurpose::Counter => policy.counters.iter().map(|c| c.name.as_str()).collect(),
        MapPurpose::Limiter => policy.limiters.iter().map(|l| l.name.as_str()).collect(),
        MapPurpose::Table => policy.tables.iter().map(|t| t.name.as_str()).collect(),
        MapPurpose::Maglev
        | MapPurpose::PoolBackends
        | MapPurpose::PoolActive
        | MapPurpose::Flows => policy.pools.iter().map(|p| p.name.as_str()).collect(),
        _ => return None,
    };
    // The longest declaration name the map's name carries after its prefix.
    let rest = ir_name.split_once('_').map_or("", |(_, r)| r);
    names
        .into_iter()
        .filter(|n| rest == *n || rest.strip_prefix(n).is_some_and(|t| t.starts_with('_')))
        .max_by_key(|n| n.len())
        .map(str::to_string)
}

/// The rules of `policy` in statistics-slot order, the default last.
pub fn rules(policy: &ck::Policy) -> Vec<RuleEntry> {
    policy
        .rules
        .iter()
        .map(|r| RuleEntry {
            name: r.name.clone(),
            verdict: r
                .terminal
                .as_ref()
                .map_or_else(|| "table".to_string(), |t| t.name().to_string()),
        })
        .chain(std::iter::once(RuleEntry {
            name: "default".into(),
            verdict: policy.default.terminal.name().to_string(),
        }))
        .collect()
}

/// The rules of `policy` in the statistics slots of its compiled `program`: the rules, then
/// the vacant slots a program laid out for updates in place keeps for rules to come, the
/// default last.
pub fn rules_of(policy: &ck::Policy, program: &CompiledProgram) -> Vec<RuleEntry> {
    let mut out = rules(policy);
    let slots = program.ir.default.1 as usize + 1;
    if slots > out.len() {
        let default = out.pop().expect("the default");
        out.resize(slots - 1, RuleEntry::vacant());
        out.push(default);
    }
    out
}

/// The stage a compiled program makes, before it is loaded (no program id, no pins).
pub fn stage(policy: &ck::Policy, program: &CompiledProgram) -> Stage {
    let maps = program
        .maps
        .iter()
        .map(|(def, _)| {
            let ir = program
                .ir
                .maps
                .iter()
                .find(|m| object_map_name(&program.name, &m.name) == def.name);
            MapEntry {
                name: def.name.clone(),
                pin: None,
                kind: def.kind,
                key_size: def.key_size,
                value_size: def.value_size,
                max_entries: def.max_entries,
                role: match ir {
                    Some(m) => role(m.purpose),
                    None if def.name
                        == object_map_name(&program.name, nfcc_bpf::layout::SCRATCH_MAP) =>
                    {
                        MapRole::Scratch
                    }
                    None => MapRole::Other,
                },
                owner: ir.and_then(|m| owner(policy, &m.name, m.purpose)),
            }
        })
        .collect();
    Stage {
        program_id: 0,
        program: program.name.clone(),
        maps,
        sets: crate::sets::layout(policy, &program.ir, &|n| object_map_name(&program.name, n)),
        pools: pools(policy, program),
        counted_slots: None,
        code: Some(code_digest(&program.code)),
        room: program.ir.updatable.as_ref().map(|u| {
            let name = |n: &String| {
                if n.is_empty() {
                    String::new()
                } else {
                    object_map_name(&program.name, n)
                }
            };
            let mut room = u.room.clone();
            for c in &mut room.classifiers {
                for n in [&mut c.select, &mut c.nodes, &mut c.boxes, &mut c.tuples] {
                    *n = name(n);
                }
            }
            room
        }),
    }
}

/// The dynamic pools of a compiled program and their maps' object names.
fn pools(policy: &ck::Policy, program: &CompiledProgram) -> Vec<PoolEntry> {
    let mut out: Vec<PoolEntry> = Vec::new();
    let name =
        |m: crate::ir::MapId| object_map_name(&program.name, &program.ir.maps[m.index()].name);
    let actions = program
        .ir
        .rules
        .iter()
        .flat_map(|r| &r.actions)
        .chain(&program.ir.default_actions);
    for a in actions {
        let crate::ir::Action::Balance {
            table,
            dynamic: Some(d),
            flows,
            ..
        } = a
        else {
            continue;
        };
        let ir_name = &program.ir.maps[table.index()].name;
        let Some(pool) = owner(policy, ir_name, MapPurpose::Maglev) else {
            continue;
        };
        let capacity = program.ir.maps[d.backends.index()].max_entries;
        let entry = match out.iter_mut().position(|e| e.name == pool) {
            Some(i) => &mut out[i],
            None => {
                out.push(PoolEntry {
                    name: pool,
                    v6: d.v6,
                    capacity,
                    table: name(*table),
                    backends: name(d.backends),
                    active: name(d.active),
                    flows: Vec::new(),
                });
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        if let Some(f) = flows {
            entry.flows.push(name(*f));
        }
    }
    out
}

/// A digest of `code`: FNV-1a (64 bits) over the instructions' encoding, in hex. Ours
/// rather than a crate's: it names a program's identity for `--replace`, not a security
/// property, and eight lines need no dependency.
pub fn code_digest(code: &[nfcc_bpf::insn::Insn]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in code.iter().flat_map(|i| i.encode()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_name_every_map_with_its_role_and_owner() {
        let src = "policy p on xdp {\n  set blocked: ipv4 prefix, dynamic = { 192.0.2.0/24 }\n  counter hits: key ip.src\n  rule b: ip.src in blocked => count hits, drop\n  default pass\n}\n";
        let (program, d) = nfcc_dsl::check_source(src, &nfcc_dsl::CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{d:?}"));
        let c = crate::compile::compile(&program, "p.nf", src, None)
            .unwrap_or_else(|d| panic!("{d:?}"));
        let st = stage(&program.policies[0], &c.programs[0]);
        let stats = st.map_with_role(MapRole::RuleStats).map(|m| m.name.clone());
        assert_eq!(stats.as_deref(), Some("p_nfcc_rule_stats"));
        let cnt = st.maps.iter().find(|m| m.role == MapRole::Counter);
        assert_eq!(cnt.and_then(|m| m.owner.clone()).as_deref(), Some("hits"));
        assert!(st.maps.iter().all(|m| m.role != MapRole::Other), "{st:?}");
        let set = &st.sets[0];
        assert!(set.dynamic && !set.maps.is_empty(), "{set:?}");
        assert!(set.maps.iter().all(|m| st.map(&m.map).is_some()), "{st:?}");
        let r = rules(&program.policies[0]);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[1].name.as_str(), r[1].verdict.as_str()),
            ("default", "pass")
        );
    }
}
