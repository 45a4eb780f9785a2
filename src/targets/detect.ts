import { readFile } from "node:fs/promises";
import { InputError } from "../errors.js";
import { MICROARCHS, type CatalogueEntry } from "./catalogue.js";
import type { Family } from "./types.js";

/** archspec's table from the `CPU implementer` code of aarch64 /proc/cpuinfo to a vendor name. */
export const ARM_VENDORS: Record<string, string> = {
  "0x41": "ARM",
  "0x42": "Broadcom",
  "0x43": "Cavium",
  "0x44": "DEC",
  "0x46": "Fujitsu",
  "0x48": "HiSilicon",
  "0x49": "Infineon Technologies AG",
  "0x4d": "Motorola",
  "0x4e": "Nvidia",
  "0x50": "APM",
  "0x51": "Qualcomm",
  "0x53": "Samsung",
  "0x56": "Marvell",
  "0x61": "Apple",
  "0x66": "Faraday",
  "0x68": "HXT",
  "0x69": "Intel",
  "0xc0": "Ampere",
};

/** `uname -m` and Node's `process.arch` spellings of the two families. */
const MACHINES: Record<string, Family> = {
  x86_64: "x86_64",
  amd64: "x86_64",
  x64: "x86_64",
  aarch64: "aarch64",
  arm64: "aarch64",
};

interface HostInfo {
  family: Family;
  vendor: string;
  features: Set<string>;
  cpuPart: string;
}

/** The first value of every `key : value` line (the first processor's, as archspec reads it). */
export function parseCpuinfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim();
    if (!fields.has(key)) fields.set(key, line.slice(colon + 1).trim());
  }
  return fields;
}

function familyOf(machine: string): Family {
  const family = MACHINES[machine.trim().toLowerCase()];
  if (family === undefined) {
    throw new InputError(`unsupported machine "${machine}": stack-factory knows ${Object.keys(MACHINES).join(", ")}`);
  }
  return family;
}

function hostInfo(cpuinfo: string, family: Family): HostInfo {
  const fields = parseCpuinfo(cpuinfo);
  const words = (key: string): Set<string> => new Set((fields.get(key) ?? "").split(/\s+/).filter((w) => w !== ""));
  if (family === "x86_64")
    return { family, vendor: fields.get("vendor_id") || "generic", features: words("flags"), cpuPart: "" };
  const code = fields.get("CPU implementer")?.toLowerCase();
  const vendor = code === undefined || code === "" ? "generic" : (ARM_VENDORS[code] ?? code);
  return { family, vendor, features: words("Features"), cpuPart: (fields.get("CPU part") ?? "").toLowerCase() };
}

/** archspec's per-family test: same family, a matching (or generic) vendor, every feature present. */
function compatible(info: HostInfo, target: CatalogueEntry): boolean {
  if (target.family !== info.family) return false;
  // archspec cannot tell which armv8.x/armv9.x level a core implements from its features: only the root is generic.
  if (info.family === "aarch64" && target.vendor === "generic" && target.name !== "aarch64") return false;
  if (target.vendor !== "generic" && target.vendor !== info.vendor) return false;
  return target.features.every((f) => info.features.has(f));
}

/** Deeper in the tree first, then more features; the first of equals (archspec's order) wins. */
function best(candidates: readonly CatalogueEntry[]): CatalogueEntry | undefined {
  let winner: CatalogueEntry | undefined;
  for (const c of candidates) {
    const deeper = c.ancestors.length - (winner?.ancestors.length ?? -1);
    if (winner === undefined || deeper > 0 || (deeper === 0 && c.features.length > winner.features.length)) winner = c;
  }
  return winner;
}

/**
 * The most specific microarchitecture a host can run, from its /proc/cpuinfo text and `uname -m`, chosen the way
 * archspec's `host()` does: the best generic level the features reach, then the deepest vendor-specific descendant
 * of it whose features are all present (on aarch64, the one whose `CPU part` matches, when one does).
 */
export function detectHost(cpuinfo: string, machine: string): string {
  const family = familyOf(machine);
  const info = hostInfo(cpuinfo, family);
  let candidates = MICROARCHS.filter((m) => compatible(info, m));
  const generic = best(candidates.filter((m) => m.vendor === "generic"));
  if (generic === undefined) return family;
  if (info.cpuPart !== "" && candidates.some((m) => m.cpuPart === info.cpuPart)) {
    candidates = candidates.filter((m) => m.cpuPart === info.cpuPart);
  }
  return (best(candidates.filter((m) => m.ancestors.includes(generic.name))) ?? generic).name;
}

/** `detectHost` on this machine; hosts without /proc/cpuinfo get their family's generic name. */
export async function detectHostFromSystem(): Promise<string> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  return detectHost(cpuinfo, process.arch);
}
