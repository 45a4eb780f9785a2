/** Fixed paths inside every build container. The host side of each mount is chosen by the plan. */
export const CONTAINER = {
  workRoot: "/sf",
  home: "/sf/home",
  spack: "/sf/spack",
  envDir: "/sf/env",
  installRoot: "/sf/install",
  cacheRoot: "/sf/cache",
  buildcache: "/sf/cache/buildcache",
  sourceCache: "/sf/cache/source",
  userCache: "/sf/cache/spack-user",
  ccache: "/sf/cache/ccache",
  repos: "/sf/repos",
  mirrors: "/sf/mirrors",
  output: "/sf/out",
} as const;

/** Unprivileged user of the builder image. */
export const BUILDER_USER = { name: "builder", uid: 10001 } as const;

/** Spack's padded length for install prefixes. */
export const INSTALL_PADDED_LENGTH = 128;

/**
 * Minimum length of the build prefix (the view's real path) baked into the shipped files: an install prefix of up
 * to this many characters fits in place of it.
 */
export const BUILD_PREFIX_MIN_LENGTH = 160;
