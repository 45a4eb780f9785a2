/**
 * The stack as a build from a kit sees it: Spack, spack-packages, the stack's repositories and local mirrors all
 * taken from the kit, plus the kit's source mirror. Pure. Mirrors given by URL are left out: a build from a kit
 * runs with no network at all.
 */
import { join } from "node:path";
import type { Stack } from "../config/types.js";
import { KIT_BUILDCACHE_MIRROR, KIT_LAYOUT, KIT_MIRROR } from "./layout.js";
import type { KitManifest } from "./manifest.js";

export function stackFromKit(stack: Stack, kit: KitManifest, kitDir: string): Stack {
  const at = (rel: string) => join(kitDir, rel);
  const mirrors: Record<string, string> = { [KIT_MIRROR]: at(KIT_LAYOUT.mirror) };
  for (const m of kit.mirrors) mirrors[m.name] = at(m.path);
  // A buildcache carried with --with-buildcache: Spack installs from it as from any binary mirror.
  if (kit.buildcache !== undefined) mirrors[KIT_BUILDCACHE_MIRROR] = at(kit.buildcache);
  const repos = stack.spack.repos.map((r) => {
    const inKit = kit.repos.find((k) => k.namespace === r.namespace);
    return { namespace: r.namespace, path: inKit === undefined ? r.path : at(inKit.path) };
  });
  return {
    ...stack,
    spack: {
      ...stack.spack,
      origin: { kind: "local", path: at(kit.spack.path) },
      ...(kit.spack_packages === undefined
        ? {}
        : { builtin: { kind: "local" as const, path: at(kit.spack_packages.builtin) } }),
      repos,
      mirrors,
    },
  };
}
