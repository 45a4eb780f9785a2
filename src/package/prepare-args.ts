/** How prepare-relocation.py is run: its arguments, the tarball's names among them (layout.ts owns them). */
import { posix } from "node:path";
import { scriptLayout } from "./layout.js";

export interface PrepareArgs {
  /** The view root as configured (a symlink to Spack's real view directory). */
  view: string;
  /** Directory for the outputs: the tarball's relocation files at their tarball paths, the report beside them. */
  stage: string;
  /** The tarball's top directory, `<name>-<version>-<target>`. */
  top: string;
  /** Spack's install tree root: file names holding it are dropped. */
  installRoot?: string;
}

export function prepareArgv(script: string, args: PrepareArgs): string[] {
  return [
    "python3",
    script,
    "--view",
    args.view,
    "--stage",
    args.stage,
    "--top",
    args.top,
    ...(args.installRoot === undefined ? [] : ["--install-root", args.installRoot]),
    "--layout",
    JSON.stringify(scriptLayout()),
  ];
}

/** Where prepare-relocation.py wrote `name` (a tarball path or one of PREPARE_OUTPUTS) under `stage`. */
export function stagePath(stage: string, name: string): string {
  return posix.join(stage, name);
}
