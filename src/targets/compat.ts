import { getMicroarch, MICROARCHS, type CatalogueEntry } from "./catalogue.js";

/** A host can run code built for `target` when the target is the host itself or one of its ancestors. */
export function canRun(host: string, target: string): boolean {
  const arch = getMicroarch(host);
  if (arch === undefined || getMicroarch(target) === undefined) return false;
  return host === target || arch.ancestors.includes(target);
}

export type CompilerVerdict = { ok: true } | { ok: false; reason: string };

type Compiler = { name: string; version: string };

/** The numeric part of a version, as archspec reads it: `12.2.0-14` → `12.2.0`; undefined when there is none. */
function numericVersion(version: string): number[] | undefined {
  const match = /^v?(\d+(?:\.\d+)*)/.exec(version.trim());
  return match?.[1] === undefined ? undefined : match[1].split(".").map(Number);
}

/** Lexicographic tuple comparison, as Python compares archspec's version tuples ((12, 2, 0) > (12, 2)). */
function compareTuples(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** archspec's `min:max` check; both ends inclusive, compared as tuples. */
/**
 * Spack's range semantics: the upper bound includes its sub-versions (`10.3:12.2` contains 12.2.0 and 12.2.1),
 * which is how Spack's concretizer reads archspec's table.
 */
function inRange(version: readonly number[], range: string): boolean {
  const [min = "", max = ""] = range.split(":");
  if (min !== "" && compareTuples(numericVersion(min) ?? [], version) > 0) return false;
  if (max !== "") {
    const upper = numericVersion(max) ?? [];
    if (compareTuples(upper, version.slice(0, upper.length)) < 0) return false;
  }
  return true;
}

function describeRange(compiler: string, range: string): string {
  const [min = "", max = ""] = range.split(":");
  if (min === "" && max === "") return `any ${compiler}`;
  if (max === "") return `${compiler} >= ${min}`;
  if (min === "") return `${compiler} <= ${max}`;
  return `${compiler} ${min} to ${max}`;
}

function supports(arch: CatalogueEntry, compiler: "gcc" | "clang", version: readonly number[]): boolean {
  return arch.compilers[compiler].some((range) => inRange(version, range));
}

/**
 * Whether `compiler` can produce code for `target`, by archspec's compiler table (the one Spack consults: a
 * target the compiler is not listed for is refused by Spack's concretizer). Only gcc and clang are known;
 * other compilers pass, for want of data.
 */
export function compilerCanTarget(target: string, compiler: Compiler): CompilerVerdict {
  const arch = getMicroarch(target);
  if (arch === undefined) {
    const known = MICROARCHS.map((m) => m.name).join(", ");
    return { ok: false, reason: `unknown microarchitecture "${target}" (known: ${known})` };
  }
  const name = compiler.name.trim().toLowerCase();
  if (name !== "gcc" && name !== "clang") return { ok: true };
  const version = numericVersion(compiler.version);
  if (version === undefined) {
    return { ok: false, reason: `${name} version "${compiler.version}" is not a dotted version such as 13.2.0` };
  }
  if (supports(arch, name, version)) return { ok: true };
  const lowerEnd = (range: string): number[] => numericVersion(range.split(":")[0] ?? "") ?? [];
  const ranges = [...arch.compilers[name]].sort((a, b) => compareTuples(lowerEnd(a), lowerEnd(b)));
  const lowest = ranges[0]?.split(":")[0] ?? "";
  const below = lowest !== "" && compareTuples(version, lowerEnd(lowest)) < 0;
  const needs = below
    ? `needs ${name} >= ${lowest}`
    : `archspec knows ${ranges.map((r) => describeRange(name, r)).join(" or ")}`;
  const fallback = arch.ancestors.find((a) => {
    const ancestor = getMicroarch(a);
    return ancestor !== undefined && supports(ancestor, name, version);
  });
  const closest = fallback === undefined ? "" : `; the closest target it can build for is ${fallback}`;
  return { ok: false, reason: `${name} ${compiler.version} cannot target ${target}: ${needs}${closest}` };
}

/** Default `gcc` package version (as `gcc -dumpfullversion` prints it) of Debian-family base images, by release. */
const DISTRO_GCC: Record<string, Record<string, string>> = {
  ubuntu: {
    "18.04": "7.5.0",
    bionic: "7.5.0",
    "20.04": "9.4.0",
    focal: "9.4.0",
    "22.04": "11.4.0",
    jammy: "11.4.0",
    "24.04": "13.3.0",
    noble: "13.3.0",
  },
  debian: {
    "10": "8.3.0",
    buster: "8.3.0",
    "11": "10.2.1",
    bullseye: "10.2.1",
    "12": "12.2.0",
    bookworm: "12.2.0",
    "13": "14.2.0",
    trixie: "14.2.0",
  },
};

const OFFICIAL_PREFIXES = [
  "docker.io/library/",
  "index.docker.io/library/",
  "registry-1.docker.io/library/",
  "docker.io/",
  "library/",
];

/**
 * The default gcc of a well-known base image (`ubuntu:24.04`, `debian:bookworm-slim`, `docker.io/library/debian:12.5`),
 * or undefined when the image is not one of them, has no tag (`latest` moves) or is pinned by digest only.
 */
export function osCompiler(baseImage: string): { name: "gcc"; version: string } | undefined {
  let ref = baseImage.trim().toLowerCase().split("@")[0] ?? "";
  for (const prefix of OFFICIAL_PREFIXES) if (ref.startsWith(prefix)) ref = ref.slice(prefix.length);
  const colon = ref.indexOf(":");
  if (colon < 0) return undefined;
  const releases = DISTRO_GCC[ref.slice(0, colon)];
  if (releases === undefined) return undefined;
  // `bookworm-slim`, `noble-20240423`: the release is the first dash-separated part; `12.5` is Debian 12.
  const release = ref.slice(colon + 1).split("-")[0] ?? "";
  const point = /^(\d+)\.\d+(\.\d+)?$/.exec(release);
  const version = releases[release] ?? (point?.[1] === undefined ? undefined : releases[point[1]]);
  return version === undefined ? undefined : { name: "gcc", version };
}
