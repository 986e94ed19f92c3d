//! Part 2 of the program, rule by rule: the predicate, then the decision — the rule's actions,
//! its verdict (from the terminal, from a table entry, or through the redirect-targets map)
//! and its statistics slot — and a jump to the epilogue. Unreachable rules emit nothing.

use super::asm::Label;
use super::{CodegenError, Gen};
use crate::ir::{Action, Cond, MapId, Pred};
use crate::verdict::verdict;
use nfcc_bpf::insn::{helper, Alu, Insn, Jmp, Size, R0, R1, R10, R2, R3, R6, R7, R8, R9};
use nfcc_dsl::checked::{Target, Terminal};

impl Gen<'_> {
    pub(super) fn rules(&mut self, epilogue: Label, bare: bool) -> Result<(), CodegenError> {
        // The presence word lives in r8 for the rules (data_end is no longer needed).
        if !bare {
            self.a.emit(Insn::ldx(Size::DW, R8, R9, 0));
        }
        let mut starts = Vec::new();
        let mut always = false;
        for r in &self.p.rules {
            // A rule that never matches has no code; after one that always matches, nothing is
            // reachable (and the verifier rejects unreachable code).
            match &r.pred {
                Pred::Const(false) => continue,
                Pred::Const(true) => always = true,
                _ => {}
            }
            starts.push((self.a.insns.len(), r.span.start));

            let next = self.a.label();
            // A lone presence test is one branch either way; branching is shorter.
            let lone_presence = matches!(&r.pred, Pred::Cond(c)
                if matches!(self.p.conds[c.index()], Cond::Present(_)));
            if !lone_presence && self.pure_depth(&r.pred).is_some_and(|d| d < 4) {
                // One branch per rule: the verifier keeps at most one pending state however
                // many rules there are, which is what lets 10,000-rule policies verify.
                self.eval_pure(&r.pred, 0);
                self.a.jump(Insn::jmp_imm(Jmp::Eq, R1, 0, 0), next);
            } else {
                self.pred(&r.pred, false, next);
            }
            if self.a.dead_here() {
                // The predicate always jumps on (its limiters still run): no decision here.
                self.a.bind(next);
                continue;
            }
            if r.merged > 0 {
                self.decide_merged(r.table.unwrap_or(0), epilogue);
            } else {
                self.decide(&r.actions, &r.terminal, r.table, r.stats_index, epilogue);
            }
            // Nothing jumps past a rule that always matches: what follows is unreachable.
            let reached = self.a.used(next);
            self.a.bind(next);
            if always || !reached {
                always = true;
                break;
            }
        }
        if always {
            self.rule_starts = starts;
            return Ok(());
        }
        let (t, idx) = self.p.default.clone();
        let acts = self.p.default_actions.clone();
        self.decide(&acts, &t, None, idx, epilogue);
        self.rule_starts = starts;
        Ok(())
    }

    /// A merged run's entry hit: its table slot holds the verdict (low word) and the
    /// statistics slot (high word).
    fn decide_merged(&mut self, slot: u32, epilogue: Label) {
        let at = self.lay.tables + 8 * slot as i16;
        self.a.emit(Insn::ldx(Size::W, R7, R9, at));
        self.a.emit(Insn::ldx(Size::W, R1, R9, at + 4));
        self.a.emit(Insn::stx(Size::W, R10, -4, R1));
        self.a.jump(Insn::ja(0), epilogue);
    }

    /// A rule fired: run its actions, set the verdict (r7) and statistics slot, go to the
    /// epilogue.
    fn decide(
        &mut self,
        actions: &[Action],
        t: &Terminal,
        table: Option<u32>,
        stats: u32,
        epilogue: Label,
    ) {
        // Where a failed FIB lookup goes: the packet passes, untouched, counted for this rule.
        let fib_failed = self.a.label();
        for a in actions {
            match a {
                Action::Count { map, key } => self.count(*map, key),
                Action::Mark(m) => {
                    self.a.emit(Insn::mov64_imm(R1, *m as i32));
                    self.a.emit(Insn::stx(Size::W, R6, 8, R1));
                }
                Action::Rewrite { field, value } => self.rewrite(*field, *value),
                Action::DecTtl => self.dec_ttl(),
                Action::Sample { n, map } => self.sample(*n, *map, stats),
                Action::Balance {
                    table,
                    key,
                    backends,
                    via_fib,
                    encap,
                    dynamic,
                    flows,
                } => self.balance(
                    *table,
                    key,
                    super::actions::Pick {
                        backends,
                        dynamic: dynamic.as_ref(),
                        flows: *flows,
                    },
                    *via_fib,
                    encap.as_ref(),
                    fib_failed,
                ),
            }
        }
        if let Some(slot) = table {
            // The table's entry decided: its verdict was kept when the key hit.
            let at = self.lay.tables + 8 * slot as i16;
            if self.p.target == Target::Nfp {
                // The NIC needs a verdict the verifier knows: pick the constant equal to the
                // entry's (tables hold pass, drop, or tx/abort on xdp).
                let (hook, target) = (self.p.hook, self.p.target);
                self.a.emit(Insn::ldx(Size::W, R1, R9, at));
                self.a
                    .emit(Insn::mov64_imm(R7, verdict(hook, target, &Terminal::Pass)));
                for t in [Terminal::Drop, Terminal::Tx, Terminal::Abort] {
                    if hook.is_tc() && t != Terminal::Drop {
                        continue;
                    }
                    let v = verdict(hook, target, &t);
                    let other = self.a.label();
                    self.a.jump(Insn::jmp_imm(Jmp::Ne, R1, v, 0), other);
                    self.a.emit(Insn::mov64_imm(R7, v));
                    self.a.bind(other);
                }
            } else {
                self.a.emit(Insn::ldx(Size::W, R7, R9, at));
                if let Some(map) = self.p.redirect_map {
                    // An entry that redirects names its target in the high word.
                    let done = self.a.label();
                    let redirect = verdict(
                        self.p.hook,
                        self.p.target,
                        &Terminal::Redirect(String::new()),
                    );
                    self.a.jump(Insn::jmp_imm(Jmp::Ne, R7, redirect, 0), done);
                    self.a.emit(Insn::ldx(Size::W, R1, R9, at + 4));
                    self.redirect_through(map, None);
                    self.a.bind(done);
                }
            }
        } else if let (Terminal::Redirect(name), Some(map)) = (t, self.p.redirect_map) {
            let idx = self.p.redirects.iter().position(|n| n == name).unwrap_or(0) as i32;
            self.redirect_through(map, Some(idx));
        } else if let (Terminal::Xsk, Some(map)) = (t, self.p.xsk_map) {
            self.redirect_xsk(map);
        } else {
            self.a
                .emit(Insn::mov64_imm(R7, verdict(self.p.hook, self.p.target, t)));
        }
        self.a.emit(Insn::mov64_imm(R1, stats as i32));
        self.a.emit(Insn::stx(Size::W, R10, -4, R1));
        self.a.jump(Insn::ja(0), epilogue);
        if self.a.used(fib_failed) {
            self.a.bind(fib_failed);
            let pass = verdict(self.p.hook, self.p.target, &Terminal::Pass);
            self.a.emit(Insn::mov64_imm(R7, pass));
            self.a.emit(Insn::mov64_imm(R1, stats as i32));
            self.a.emit(Insn::stx(Size::W, R10, -4, R1));
            self.a.jump(Insn::ja(0), epilogue);
        }
    }

    /// `bpf_redirect_map` to the AF_XDP socket map's entry of the packet's receive queue, with
    /// `XDP_PASS` as the verdict when no socket is bound there (libxdp's default program does
    /// the same); the verdict goes to r7.
    fn redirect_xsk(&mut self, map: MapId) {
        self.a.emit2(Insn::ld_map(R1, map.0));
        // xdp_md->rx_queue_index; r6 holds the context for the whole program.
        self.a.emit(Insn::ldx(Size::W, R2, R6, 16));
        self.a
            .emit(Insn::mov64_imm(R3, nfcc_bpf::prog::xdp::PASS as i32));
        self.a.emit(Insn::call(helper::REDIRECT_MAP));
        self.a.emit(Insn::mov64_reg(R7, R0));
    }

    /// `bpf_redirect` to the interface in slot `idx` of the redirect-targets map (`None`: the
    /// slot number is already in r1); the verdict goes to r7. The interface index is filled in
    /// at load time; an unfilled slot redirects to index 0, which the kernel refuses at
    /// transmit time.
    fn redirect_through(&mut self, map: MapId, idx: Option<i32>) {
        if let Some(idx) = idx {
            self.a.emit(Insn::mov64_imm(R1, idx));
        }
        self.a.emit(Insn::stx(Size::W, R10, -8, R1));
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R10));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, -8));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.a.emit(Insn::mov64_imm(R1, 0));
        let none = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), none);
        self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
        self.a.bind(none);
        self.a.emit(Insn::mov64_imm(R2, 0));
        self.a.emit(Insn::call(helper::REDIRECT));
        self.a.emit(Insn::mov64_reg(R7, R0));
    }
}
