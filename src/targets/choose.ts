/**
 * Which of a bundle's targets a node runs: the choice the bundle's module makes at load time. The same rule is
 * rendered into the Lua and Tcl modules (modules-templates/choose-target.*.eta) from `choiceTable`, so that the
 * factory, install.sh and both module systems agree; tests run all three against recorded /proc/cpuinfo.
 *
 * A node can run a target when it is of the target's family, its vendor is the target's (or the target is
 * generic), and it has every feature archspec lists for the target (archspec's own test, as Spack uses it). The
 * armv8.x/armv9.x generic levels cannot be told apart from /proc/cpuinfo, so they are never confirmed. Of the
 * targets a node can run, the most specific wins: the deepest in archspec's tree, then the one with the most
 * features, then the first given.
 */
import { ARM_VENDORS, parseCpuinfo } from "./detect.js";
import { getMicroarch, type CatalogueEntry } from "./catalogue.js";
import type { Family } from "./types.js";

/** What the choice reads from /proc/cpuinfo. */
export interface NodeCpu {
  /** From the fields present: `flags`/`vendor_id` (x86_64), `Features`/`CPU implementer` (aarch64). */
  family: Family | undefined;
  vendor: string;
  features: Set<string>;
}

/** One row of the table the modules carry, best first. */
export interface ChoiceRow {
  name: string;
  family: Family;
  vendor: string;
  /** False for targets /proc/cpuinfo cannot confirm (aarch64's generic levels above aarch64). */
  checkable: boolean;
  features: string[];
}

export type Verdict = { target: string; runnable: true } | { target: string; runnable: false; reason: string };

export type Choice =
  | { ok: true; target: string; why: string; verdicts: Verdict[] }
  | { ok: false; message: string; verdicts: Verdict[] };

export function readNodeCpu(cpuinfo: string): NodeCpu {
  const fields = parseCpuinfo(cpuinfo);
  const words = (key: string) => new Set((fields.get(key) ?? "").split(/\s+/).filter((w) => w !== ""));
  if (fields.has("flags") || fields.has("vendor_id")) {
    return { family: "x86_64", vendor: fields.get("vendor_id") || "generic", features: words("flags") };
  }
  if (fields.has("Features") || fields.has("CPU implementer")) {
    const code = (fields.get("CPU implementer") ?? "").toLowerCase();
    const vendor = code === "" ? "generic" : (ARM_VENDORS[code] ?? code);
    return { family: "aarch64", vendor, features: words("Features") };
  }
  return { family: undefined, vendor: "generic", features: new Set() };
}

function entry(name: string): CatalogueEntry {
  const found = getMicroarch(name);
  if (found === undefined) throw new Error(`choose: unknown target ${name}`);
  return found;
}

/** The bundle's targets as the modules carry them: best first (deepest, then most features, then given order). */
export function choiceTable(targets: readonly string[]): ChoiceRow[] {
  const rows = targets.map((name, index) => ({ e: entry(name), index }));
  rows.sort(
    (a, b) =>
      b.e.ancestors.length - a.e.ancestors.length || b.e.features.length - a.e.features.length || a.index - b.index,
  );
  return rows.map(({ e }) => ({
    name: e.name,
    family: e.family,
    vendor: e.vendor,
    checkable: !(e.family === "aarch64" && e.vendor === "generic" && e.name !== "aarch64"),
    features: [...e.features],
  }));
}

/** Why `node` cannot run `row` (undefined: it can). */
export function whyNot(row: ChoiceRow, node: NodeCpu): string | undefined {
  if (node.family !== row.family) return `it is for ${row.family} CPUs; this node is ${node.family ?? "unknown"}`;
  if (!row.checkable) return `/proc/cpuinfo cannot confirm ${row.name}`;
  if (row.vendor !== "generic" && row.vendor !== node.vendor) {
    return `it needs a ${row.vendor} CPU; this node is ${node.vendor}`;
  }
  const missing = row.features.filter((f) => !node.features.has(f));
  return missing.length === 0 ? undefined : `missing ${missing.join(" ")}`;
}

/**
 * The target a node with `cpuinfo` loads, `override` (the `<NAME>_TARGET` variable; "" for none) first: an
 * override names a target of the bundle the node can run, or the choice fails saying why.
 */
export function chooseTarget(table: readonly ChoiceRow[], cpuinfo: string, override = "", variable = "TARGET"): Choice {
  const node = readNodeCpu(cpuinfo);
  const verdicts: Verdict[] = table.map((row) => {
    const reason = whyNot(row, node);
    return reason === undefined ? { target: row.name, runnable: true } : { target: row.name, runnable: false, reason };
  });
  const names = table.map((r) => r.name).join(", ");
  if (override !== "") {
    const asked = verdicts.find((v) => v.target === override);
    if (asked === undefined) return { ok: false, message: `${variable}=${override} is not one of ${names}`, verdicts };
    if (!asked.runnable) {
      return {
        ok: false,
        message: `${variable}=${override}: this node cannot run ${override}: ${asked.reason}`,
        verdicts,
      };
    }
    return { ok: true, target: override, why: `set by ${variable}`, verdicts };
  }
  const best = verdicts.find((v) => v.runnable);
  if (best !== undefined) {
    return { ok: true, target: best.target, why: `the most specific of ${names} this node can run`, verdicts };
  }
  const reasons = verdicts.map((v) => (v.runnable ? "" : `${v.target}: ${v.reason}`)).join("; ");
  return { ok: false, message: `this node can run none of ${names} (${reasons})`, verdicts };
}
