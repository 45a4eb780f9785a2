/**
 * "Will it run here?": what a tree needs from a node (recorded by prepare-relocation.py, kept in manifest.json as
 * `portability`), and the check of one machine against it, as install.sh does it before copying anything: the ELF
 * machine, every library the view does not hold found in the system library directories, and every symbol version
 * needed from them defined by that library. A library's versions are read from its own version strings, never from
 * a release number (RHEL 9.7's glibc says 2.34 and defines GLIBC_2.35).
 */
import { constants } from "node:fs";
import { access, readdir, readFile, realpath } from "node:fs/promises";
import { arch } from "node:os";
import { execa } from "execa";

/** manifest.json `portability`. */
export interface Portability {
  /** ELF machine of the view's binaries (`x86_64`, `aarch64`, ...). */
  machine: string;
  /** The highest GLIBC_*, GLIBCXX_*, CXXABI_* and GCC_* version any ELF in the view requires. */
  highest_versions: Record<string, string>;
  /** Libraries some ELF in the view needs that the view does not hold. */
  node_libraries: string[];
  /** Symbol versions needed from those libraries. */
  node_versions: { library: string; version: string }[];
  /** node_libraries other than glibc's own: a node may well lack them (also warnings in the build log). */
  hazards: { library: string; needed_by: string[] }[];
  /** Shebangs were rewritten to the /usr/bin/env -S form. */
  needs_env_split: boolean;
}

/** prepare.json `portability`, as prepare-relocation.py writes it. */
export interface PreparePortability {
  machine: string | string[];
  highestVersions: Record<string, string>;
  nodeLibraries: string[];
  nodeVersions: { library: string; version: string }[];
  hazards: { library: string; neededBy: string[] }[];
  needsEnvSplit: boolean;
}

export function portabilityFromPrepare(p: PreparePortability): Portability {
  return {
    machine: Array.isArray(p.machine) ? p.machine.join(",") : p.machine,
    highest_versions: { ...p.highestVersions },
    node_libraries: [...p.nodeLibraries],
    node_versions: p.nodeVersions.map((v) => ({ library: v.library, version: v.version })),
    hazards: p.hazards.map((h) => ({ library: h.library, needed_by: [...h.neededBy] })),
    needs_env_split: p.needsEnvSplit,
  };
}

/** The build-report warnings for a portability record: one per library a node may lack. */
export function portabilityWarnings(p: Portability): string[] {
  return p.hazards.map(
    (h) =>
      `portability: ${h.library} is needed (by ${h.needed_by.join(", ")}) but is neither in the view nor part of glibc; nodes without it cannot run the tree`,
  );
}

const NODE_MACHINES: Record<string, string> = {
  x64: "x86_64",
  arm64: "aarch64",
  ppc64: "ppc64",
  ia32: "i386",
  arm: "arm",
  riscv64: "riscv64",
  s390x: "s390x",
};
const ELF_MACHINE_NUMBERS: Record<string, number> = {
  x86_64: 62,
  aarch64: 183,
  ppc64: 21,
  i386: 3,
  arm: 40,
  riscv64: 243,
  s390x: 22,
};

/** The system library directories, in the dynamic loader's usual order (plus /etc/ld.so.conf.d). */
async function libraryDirs(): Promise<string[]> {
  const dirs = ["/lib64", "/usr/lib64"];
  for (const base of ["/lib", "/usr/lib"]) {
    const entries = await readdir(base).catch(() => [] as string[]);
    dirs.push(
      ...entries
        .filter((e) => e.includes("-linux-gnu"))
        .sort()
        .map((e) => `${base}/${e}`),
    );
  }
  dirs.push("/lib", "/usr/lib", "/usr/local/lib");
  const conf = await readdir("/etc/ld.so.conf.d").catch(() => [] as string[]);
  for (const name of conf.filter((n) => n.endsWith(".conf")).sort()) {
    const text = await readFile(`/etc/ld.so.conf.d/${name}`, "utf8").catch(() => "");
    for (const line of text.split("\n")) if (line.startsWith("/")) dirs.push(line.trim().split(/\s/)[0]!);
  }
  const seen = new Set<string>();
  const out: string[] = [];
  for (const d of dirs) {
    const real = await realpath(d).catch(() => undefined);
    if (real !== undefined && !seen.has(real)) {
      seen.add(real);
      out.push(real);
    }
  }
  return out;
}

async function elfMachine(path: string): Promise<number | undefined> {
  const bytes = await readFile(path).catch(() => undefined);
  if (bytes === undefined || bytes.length < 20 || bytes.readUInt32BE(0) !== 0x7f454c46) return undefined;
  return bytes[5] === 2 ? bytes.readUInt16BE(18) : bytes.readUInt16LE(18);
}

/** The NUL-terminated strings of a library that look like version names (`GLIBC_2.35`, `GLIBCXX_3.4.30`). */
async function definedVersions(path: string): Promise<Set<string>> {
  const text = (await readFile(path)).toString("latin1");
  return new Set(text.split("\0").filter((s) => /^[A-Za-z][A-Za-z0-9_.+-]*_[0-9][0-9.]*$/.test(s)));
}

function versionKey(name: string): number[] {
  return (name.split("_").pop() ?? "").split(".").map(Number);
}

function newer(a: string, b: string): boolean {
  const x = versionKey(a);
  const y = versionKey(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return false;
}

export interface NodeCheck {
  ok: boolean;
  problems: string[];
}

/** Checks this machine against `p`, as install.sh does on the node. */
export async function checkThisNode(p: Portability): Promise<NodeCheck> {
  const problems: string[] = [];
  const here = NODE_MACHINES[arch()] ?? arch();
  if (here !== p.machine) problems.push(`the tree is for ${p.machine} machines; this one is ${here}`);
  const machine = ELF_MACHINE_NUMBERS[p.machine];
  const dirs = await libraryDirs();
  const found = new Map<string, string>();
  for (const library of p.node_libraries) {
    let hit: string | undefined;
    for (const dir of dirs) {
      const path = `${dir}/${library}`;
      if (
        !(await access(path, constants.R_OK).then(
          () => true,
          () => false,
        ))
      )
        continue;
      if (machine === undefined || (await elfMachine(path)) === machine) {
        hit = path;
        break;
      }
    }
    if (hit === undefined) problems.push(`${library} is needed and not found in ${dirs.join(" ")}`);
    else found.set(library, hit);
  }
  const wanted = new Map<string, string[]>();
  for (const { library, version } of p.node_versions) wanted.set(library, [...(wanted.get(library) ?? []), version]);
  for (const [library, versions] of wanted) {
    const path = found.get(library);
    if (path === undefined) continue;
    const defined = await definedVersions(path);
    const missing = versions.filter((v) => !defined.has(v));
    if (missing.length === 0) continue;
    const family = missing[missing.length - 1]!.replace(/_[0-9.]*$/, "");
    const newest = [...defined]
      .filter((v) => v.startsWith(`${family}_`))
      .reduce<string | undefined>((a, v) => (a === undefined || newer(v, a) ? v : a), undefined);
    problems.push(
      `${path} does not define ${missing.join(" ")} (the newest ${family} version it defines is ${newest ?? "none"})`,
    );
  }
  if (p.needs_env_split) {
    const env = await execa("/usr/bin/env", ["-S", "/bin/sh -c true"], { reject: false });
    if (env.exitCode !== 0)
      problems.push(
        "/usr/bin/env does not support -S (coreutils 8.30 or later), which the tree's scripts use to find their interpreter",
      );
  }
  return { ok: problems.length === 0, problems };
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

/** The manifest's `portability` record, checked; a string says what is wrong with it. */
export function parsePortability(value: unknown): Portability | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "portability is not an object";
  const p = value as Record<string, unknown>;
  if (typeof p["machine"] !== "string") return "portability.machine is not a string";
  const highest = p["highest_versions"];
  if (typeof highest !== "object" || highest === null || Object.values(highest).some((v) => typeof v !== "string"))
    return "portability.highest_versions is not a map of strings";
  if (!isStrings(p["node_libraries"])) return "portability.node_libraries is not a list of names";
  const versions = p["node_versions"];
  if (
    !Array.isArray(versions) ||
    !versions.every(
      (v: unknown) =>
        typeof v === "object" &&
        v !== null &&
        typeof (v as Record<string, unknown>)["library"] === "string" &&
        typeof (v as Record<string, unknown>)["version"] === "string",
    )
  ) {
    return "portability.node_versions is not a list of {library, version}";
  }
  const hazards = p["hazards"];
  if (
    !Array.isArray(hazards) ||
    !hazards.every(
      (h: unknown) =>
        typeof h === "object" &&
        h !== null &&
        typeof (h as Record<string, unknown>)["library"] === "string" &&
        isStrings((h as Record<string, unknown>)["needed_by"]),
    )
  ) {
    return "portability.hazards is not a list of {library, needed_by}";
  }
  if (typeof p["needs_env_split"] !== "boolean") return "portability.needs_env_split is not a boolean";
  return {
    machine: p["machine"],
    highest_versions: Object.fromEntries(Object.entries(highest as Record<string, string>)),
    node_libraries: [...p["node_libraries"]],
    node_versions: (versions as { library: string; version: string }[]).map((v) => ({
      library: v.library,
      version: v.version,
    })),
    hazards: (hazards as { library: string; needed_by: string[] }[]).map((h) => ({
      library: h.library,
      needed_by: [...h.needed_by],
    })),
    needs_env_split: p["needs_env_split"],
  };
}
