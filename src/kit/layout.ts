/**
 * Where things live in a kit directory (relative paths; `kit.json` names them too). Pure data: `kit create`
 * writes this layout, `kit verify` and `build --kit` read it.
 */
export const KIT_LAYOUT = {
  manifest: "kit.json",
  /** Detached armored signature of kit.json (when made with a key). */
  signature: "kit.json.asc",
  /** The Spack checkout, a plain tree (its commit is in kit.json). */
  spack: "spack",
  /** The spack-packages checkout (Spack v1.x), a plain tree. */
  spackPackages: "spack-packages",
  /** Source mirror: `_source-cache/archive/<sha256[:2]>/<sha256>.<ext>`, as `spack mirror create` lays it out. */
  mirror: "mirror",
  /** `spack bootstrap mirror --binary-packages`: `bootstrap_cache/` and `metadata/{sources,binaries}/`. */
  bootstrap: "bootstrap",
  /** Bootstrap source Spack is pointed at (trusted): clingo, gnupg and patchelf as binaries. */
  bootstrapBinaries: "bootstrap/metadata/binaries",
  /** The builder image of one architecture family, as `docker save` writes it. */
  image: (family: string): string => `images/builder-${family}.tar`,
  repo: (namespace: string): string => `repos/spack_repo/${namespace}`,
  stackMirror: (name: string): string => `mirrors/${name}`,
  buildcache: "buildcache",
  publicKey: "keys/public.asc",
} as const;

/** Name of the kit's source mirror in every environment built from a kit. */
export const KIT_MIRROR = "kit-sources";
/** Name of the kit's buildcache (`--with-buildcache`) in every environment built from a kit. */
export const KIT_BUILDCACHE_MIRROR = "kit-buildcache";
/** Name of the kit's bootstrap source (`bootstrap: sources:`, trusted). */
export const KIT_BOOTSTRAP_SOURCE = "kit-binaries";

/** Path of a checksummed source in a mirror, as Spack looks it up. */
export function sourceArchivePath(sha256: string, ext = "tar.gz"): string {
  return `${KIT_LAYOUT.mirror}/_source-cache/archive/${sha256.slice(0, 2)}/${sha256}.${ext}`;
}
