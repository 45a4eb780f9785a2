/** A validated stack file, with defaults applied and paths made absolute. Pure data. */
export interface Stack {
  /** Absolute path of the stack file. */
  file: string;
  /** Absolute directory of the stack file: relative paths in it resolve against this. */
  dir: string;
  name: string;
  version: string;
  description: string;
  /** Root Spack specs, passed to Spack as they are (never through a shell). */
  specs: string[];
  /** archspec microarchitecture names. */
  targets: string[];
  base_image: string;
  compiler: CompilerChoice;
  spack: SpackSource;
  /** Passed into Spack's `packages:` as is (merged with the target requirement). */
  packages: Record<string, unknown>;
  /** Build-only tools taken from the OS image (`spack external find --not-buildable`). */
  externals: string[];
  /** Default install prefix on the cluster. */
  prefix: string;
  /** Module name, the stack's own module variables, and the systems modules are written for (Lmod, Tcl). */
  modules: { name: string; env: Record<string, string>; systems: ("lmod" | "tcl")[] };
  /** Files shipped under data/<name>_assets/ (absolute host paths). */
  assets: string[];
}

export type CompilerChoice =
  /** The base image's own gcc (found with `spack compiler find`). */
  | { kind: "os"; packages: string[] }
  /** A compiler Spack bootstraps first, e.g. `gcc@13.3.0`. */
  | { kind: "spack"; spec: string; name: string; version: string };

/** A git url + ref (cloned once into the cache) or a local checkout (mounted read-only). */
export type Origin = { kind: "git"; url: string; ref: string } | { kind: "local"; path: string };

export interface SpackSource {
  origin: Origin;
  /**
   * Which Spack: "v1" (1.x: builtin packages live in the separate spack-packages repository) or "v0" (0.2x: builtin
   * inside the checkout). From the git ref, or from the layout of a local checkout.
   */
  generation: "v0" | "v1";
  /**
   * Spack v1.x's builtin package repository (absent for v0). `path` of a local one is the directory that holds
   * `repo.yaml` (a spack-packages checkout's `repos/spack_repo/builtin`); `root` the checkout itself.
   */
  builtin?: Origin;
  /** Extra package repositories: absolute host path and the namespace its repo.yaml declares. */
  repos: { path: string; namespace: string }[];
  /** Extra mirrors: name → url or absolute host path. */
  mirrors: Record<string, string>;
}
