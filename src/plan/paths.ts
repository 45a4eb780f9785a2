import { MAX_INSTALL_PREFIX } from "../config/guards.js";

/** Fixed paths inside every build container. The host side of each mount is chosen by the plan. */
export const CONTAINER = {
  workRoot: "/sf",
  home: "/sf/home",
  spack: "/sf/spack",
  /** Spack v1.x's builtin package repository: a spack-packages checkout (its repo at repos/spack_repo/builtin). */
  spackPackages: "/sf/spack-packages",
  builtinRepo: "/sf/spack-packages/repos/spack_repo/builtin",
  envDir: "/sf/env",
  compilerEnvDir: "/sf/compiler-env",
  compilerView: "/sf/compiler-view",
  installRoot: "/sf/install",
  cacheRoot: "/sf/cache",
  buildcache: "/sf/cache/buildcache",
  sourceCache: "/sf/cache/source",
  userCache: "/sf/cache/spack-user",
  ccache: "/sf/cache/ccache",
  repos: "/sf/repos",
  mirrors: "/sf/mirrors",
  output: "/sf/out",
  tools: "/sf/tools",
  stage: "/sf/stage",
} as const;

/** Unprivileged user of the builder image. */
export const BUILDER_USER = { name: "builder", uid: 10001 } as const;

/**
 * Spack's padded length for install prefixes. Longer than the view's real path, because Spack relocates a copy
 * view's binaries in place: a view path longer than the install prefixes cannot be written into their RPATHs.
 */
export const INSTALL_PADDED_LENGTH = 220;

/**
 * Minimum length of the build prefix (the view's real path, `<dir>/._<name>/<hash>`) baked into the shipped files.
 * An install at PREFIX maps it to PREFIX/view, so any install prefix of up to MAX_INSTALL_PREFIX (200) characters
 * fits in place of it: sites with long shared paths included.
 */
export const BUILD_PREFIX_MIN_LENGTH = MAX_INSTALL_PREFIX + "/view".length;
