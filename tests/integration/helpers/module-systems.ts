import { existsSync } from "node:fs";
import { execa } from "execa";

/** Real Lmod on this host (Debian's lmod package). */
export const LMOD_INIT = "/usr/share/lmod/lmod/init/bash";

/**
 * Real Environment Modules (Debian's environment-modules package): unpacked by scripts/ensure-host-tools.sh, since
 * the Debian package conflicts with lmod. Its own modulecmd.tcl, run by tclsh8.6 as its init script does.
 */
export const ENVIRONMENT_MODULES_ROOT = "/opt/stack-factory-host-tools/environment-modules";
const MODULECMD = ["x86_64-linux-gnu", "aarch64-linux-gnu"]
  .map((dir) => `${ENVIRONMENT_MODULES_ROOT}/usr/lib/${dir}/modulecmd.tcl`)
  .find((path) => existsSync(path));

export type ModuleSystemName = "lmod" | "tcl";

/** The shell lines that define `module` for `system`; throws when the system is not on this host. */
export function moduleInit(system: ModuleSystemName): string {
  if (system === "lmod") {
    if (!existsSync(LMOD_INIT)) throw new Error(`Lmod is missing (${LMOD_INIT}): run scripts/ensure-host-tools.sh`);
    return `source ${LMOD_INIT}`;
  }
  if (MODULECMD === undefined) {
    throw new Error(`Environment Modules is missing (${ENVIRONMENT_MODULES_ROOT}): run scripts/ensure-host-tools.sh`);
  }
  return `module() { eval "$(/usr/bin/tclsh8.6 ${MODULECMD} bash "$@")"; }`;
}

/** Runs a bash script after `system`'s init, in an environment holding only PATH, HOME and `env`. */
export function withModules(system: ModuleSystemName, home: string, script: string, env: Record<string, string> = {}) {
  return execa("bash", ["-c", `${moduleInit(system)}\n${script}`], {
    env: { PATH: "/usr/bin:/bin", HOME: home, ...env },
    extendEnv: false,
    reject: false,
  });
}

/** KEY=value lines printed by a script. */
export function values(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .split("\n")
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}
