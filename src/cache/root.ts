import { existsSync } from "node:fs";
import { join, resolve, sep } from "node:path";
import envPaths from "env-paths";

/**
 * The default cache root. Running from a checkout of the project (a `.git` beside package.json, not under
 * node_modules): the project's own `cache/`. Installed as a package: the user's cache directory
 * (`$XDG_CACHE_HOME/stack-factory`, `~/.cache/stack-factory`), which an upgrade of the package does not touch.
 */
export function defaultCacheRoot(projectRoot: string): string {
  const fromCheckout = existsSync(join(projectRoot, ".git")) && !projectRoot.split(sep).includes("node_modules");
  if (fromCheckout) return resolve(projectRoot, "cache");
  // env-paths reads XDG_CACHE_HOME (and the platform's conventions) from the process environment.
  return envPaths("stack-factory", { suffix: "" }).cache;
}

/** `--cache-dir`, else `$STACK_FACTORY_CACHE`, else the default. */
export function chooseCacheRoot(
  flag: string | undefined,
  projectRoot: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const chosen = flag ?? env["STACK_FACTORY_CACHE"];
  return chosen !== undefined && chosen !== "" ? resolve(chosen) : defaultCacheRoot(projectRoot);
}
