//! `nfcc pool add|del|list`: a dynamic pool of a deployed policy changed live, from the pool's
//! layout in the manifest and the backend slots its maps hold — never from a recompilation.
//! The plan (`nfcc_compiler::pools`) orders the writes so that no packet reaches a removed
//! backend: records first, then the idle Maglev table, then the selector flip, then a removed
//! backend's record.

use crate::error::DriverError;
use nfcc_bpf::layout::PoolBackend;
use nfcc_bpf::manifest::{PoolEntry, Stage};
use nfcc_compiler::pools::{plan, show, PoolChange};
use nfcc_runtime::deploy::{self, Deployment};
use nfcc_runtime::PinnedMaps;
use std::fmt;

/// A pool operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PoolOp {
    /// Add a backend (or change its weight).
    Add,
    /// Remove a backend.
    Del,
    /// List the backends.
    List,
}

/// One live backend of a pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Backend {
    /// Its address as the language writes it.
    pub addr: String,
    /// Its Maglev weight.
    pub weight: u16,
    /// Its slot and the slot's incarnation.
    pub slot: u32,
    /// How many backends the slot has held.
    pub incarnation: u32,
    /// Its share of the live Maglev table.
    pub share: f64,
}

/// A pool as its maps hold it, and what a change did.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolReport {
    /// The pool.
    pub pool: String,
    /// Its slots.
    pub capacity: u32,
    /// The live backends, by slot.
    pub backends: Vec<Backend>,
    /// For a change: the Maglev slots whose backend changed.
    pub moved: Option<usize>,
    /// For a change: what it did to the backend named.
    pub effect: Option<Effect>,
}

/// What `nfcc pool add|del` did to the backend it named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A new backend, in this slot.
    Added {
        /// Its address.
        addr: String,
        /// Its weight.
        weight: u16,
    },
    /// A backend the pool held got another weight.
    Reweighted {
        /// Its address.
        addr: String,
        /// The weight before.
        from: u16,
        /// The weight now.
        to: u16,
    },
    /// The backend was there with that weight already: nothing was written.
    Unchanged {
        /// Its address.
        addr: String,
        /// Its weight.
        weight: u16,
    },
    /// The backend was removed.
    Removed {
        /// Its address.
        addr: String,
    },
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Added { addr, weight } => write!(f, "added {addr} with weight {weight}"),
            Effect::Reweighted { addr, from, to } => {
                write!(f, "{addr}: weight {from} -> {to}")
            }
            Effect::Unchanged { addr, weight } => write!(
                f,
                "{addr} is already a backend with weight {weight}: nothing changed (`weight W` changes it)"
            ),
            Effect::Removed { addr } => write!(f, "removed {addr}"),
        }
    }
}

impl fmt::Display for PoolReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.effect {
            writeln!(f, "{e}")?;
        }
        if let Some(m) = self.moved {
            let pct = 100.0 * m as f64 / f64::from(nfcc_bpf::layout::MAGLEV_SLOTS);
            writeln!(
                f,
                "{m} of {} table slots moved ({pct:.2}%)",
                nfcc_bpf::layout::MAGLEV_SLOTS
            )?;
        }
        let n = self.backends.len();
        writeln!(f, "pool {}: {n} of {} backends", self.pool, self.capacity)?;
        for b in &self.backends {
            writeln!(
                f,
                "  {:<40} weight {:<3} share {:>6.2}%  slot {} (incarnation {})",
                b.addr,
                b.weight,
                100.0 * b.share,
                b.slot,
                b.incarnation
            )?;
        }
        Ok(())
    }
}

/// The pool `pool` of `d` and the stage that keeps it.
fn entry<'a>(d: &'a Deployment, pool: &str) -> Result<(&'a Stage, &'a PoolEntry), DriverError> {
    let found = d
        .manifest
        .stages()
        .find_map(|st| st.pools.iter().find(|p| p.name == pool).map(|p| (st, p)));
    found.ok_or_else(|| {
        let known: Vec<&str> = d
            .manifest
            .stages()
            .flat_map(|s| s.pools.iter().map(|p| p.name.as_str()))
            .collect();
        let known = if known.is_empty() {
            "it has none (a pool is dynamic when declared `pool NAME: dynamic = { ... }`)".into()
        } else {
            format!("its dynamic pools are: {}", known.join(", "))
        };
        DriverError::Input(format!(
            "policy `{}` has no dynamic pool `{pool}`; {known}",
            d.policy()
        ))
    })
}

/// The slots and the live table's number.
fn read(maps: &PinnedMaps, e: &PoolEntry) -> Result<(Vec<PoolBackend>, u32), DriverError> {
    let mut slots = Vec::with_capacity(e.capacity as usize);
    for i in 0..e.capacity {
        let v = maps.map_lookup(&e.backends, &i.to_le_bytes())?;
        slots.push(
            v.and_then(|v| PoolBackend::decode(&v, e.v6))
                .unwrap_or_default(),
        );
    }
    let active = maps
        .map_lookup(&e.active, &[0; 4])?
        .map_or(0, |v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
    Ok((slots, active))
}

fn report(e: &PoolEntry, slots: &[PoolBackend], moved: Option<usize>) -> PoolReport {
    let table = nfcc_compiler::pools::table(slots);
    let backends = (0..slots.len())
        .filter(|i| slots[*i].live)
        .map(|i| Backend {
            addr: show(slots[i].addr, e.v6),
            weight: slots[i].weight,
            slot: i as u32,
            incarnation: slots[i].incarnation,
            share: table.iter().filter(|s| **s as usize == i).count() as f64 / table.len() as f64,
        })
        .collect();
    PoolReport {
        pool: e.name.clone(),
        capacity: e.capacity,
        backends,
        moved,
        effect: None,
    }
}

/// The backends of `pool`.
pub fn list(d: &Deployment, pool: &str) -> Result<PoolReport, DriverError> {
    let (stage, e) = entry(d, pool)?;
    let (slots, _) = read(&deploy::stage_maps(stage)?, e)?;
    Ok(report(e, &slots, None))
}

/// Adds `addr` with `weight` to `pool` (or sets its weight), or removes it; returns the pool
/// as it now is and how many table slots moved.
pub fn change(
    d: &Deployment,
    pool: &str,
    op: PoolOp,
    addr: Option<&str>,
    weight: Option<u32>,
) -> Result<PoolReport, DriverError> {
    let (stage, e) = entry(d, pool)?;
    let Some(text) = addr else {
        let verb = if op == PoolOp::Del { "del" } else { "add" };
        return Err(DriverError::Input(format!(
            "`nfcc pool {verb}` needs a backend address"
        )));
    };
    let addr = parse_addr(text, e.v6)?;
    let maps = deploy::stage_maps(stage)?;
    let (slots, active) = read(&maps, e)?;
    let shown = nfcc_compiler::pools::show(addr, e.v6);
    // A backend the pool holds keeps its weight unless one is given.
    let held = slots
        .iter()
        .find(|s| s.live && s.addr == addr)
        .map(|s| s.weight);
    let (change, effect) = match (op, weight) {
        (PoolOp::Add, w) => {
            let weight = w.unwrap_or(u32::from(held.unwrap_or(1)));
            if !(1..=255).contains(&weight) {
                return Err(DriverError::Input(format!("weight {weight}: use 1 to 255")));
            }
            let weight = weight as u16;
            let effect = match held {
                None => Effect::Added {
                    addr: shown,
                    weight,
                },
                Some(from) if from == weight => {
                    let mut r = report(e, &slots, Some(0));
                    r.effect = Some(Effect::Unchanged {
                        addr: shown,
                        weight,
                    });
                    return Ok(r);
                }
                Some(from) => Effect::Reweighted {
                    addr: shown,
                    from,
                    to: weight,
                },
            };
            (PoolChange::Add { addr, weight }, effect)
        }
        (PoolOp::Del, None) => (PoolChange::Del { addr }, Effect::Removed { addr: shown }),
        (PoolOp::Del, Some(_)) => {
            return Err(DriverError::Input("`nfcc pool del` takes no weight".into()))
        }
        (PoolOp::List, _) => return list(d, pool),
    };
    let p = plan(e, &slots, active, change).map_err(|err| DriverError::Input(err.to_string()))?;
    let apply = |w: &nfcc_compiler::pools::MapWrite| maps.map_update(&w.map, &w.key, &w.value);
    p.before.iter().try_for_each(apply)?;
    let table: Vec<(Vec<u8>, Vec<u8>)> = p
        .table
        .iter()
        .map(|w| (w.key.clone(), w.value.clone()))
        .collect();
    maps.map_update_many(&e.table, &table)?;
    apply(&p.flip)?;
    p.after.iter().try_for_each(apply)?;
    let mut r = report(e, &p.slots, Some(p.moved));
    r.effect = Some(effect);
    Ok(r)
}

/// `nfcc pool OP POLICY POOL [ADDR [weight W]]` after the pool: the words as typed.
pub fn run(
    d: &Deployment,
    pool: &str,
    op: PoolOp,
    words: &[String],
) -> Result<PoolReport, DriverError> {
    let weight = match words {
        [] | [_] => None,
        [_, w, n] if w == "weight" => Some(
            n.parse::<u32>()
                .map_err(|_| DriverError::Input(format!("weight `{n}`: use 1 to 255")))?,
        ),
        _ => {
            return Err(DriverError::Input(
                "write `nfcc pool add|del|list POLICY POOL [ADDR [weight W]]`".into(),
            ))
        }
    };
    match op {
        PoolOp::List => list(d, pool),
        _ => change(d, pool, op, words.first().map(String::as_str), weight),
    }
}

/// An address of the pool's family.
fn parse_addr(text: &str, v6: bool) -> Result<u128, DriverError> {
    let bad = |why: &str| DriverError::Input(format!("`{text}`: {why}"));
    match text.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) if !v6 => Ok(u128::from(u32::from(a))),
        Ok(std::net::IpAddr::V6(a)) if v6 => Ok(u128::from(a)),
        Ok(_) => Err(bad(if v6 {
            "the pool's backends are IPv6"
        } else {
            "the pool's backends are IPv4"
        })),
        Err(_) => Err(bad("not an IP address")),
    }
}
