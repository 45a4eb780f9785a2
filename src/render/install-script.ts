import { readFile } from "node:fs/promises";
import { installPrefixProblem } from "../config/guards.js";
import { InputError } from "../errors.js";
import { type ModuleSystem, modulePath } from "./module.js";
import { projectRoot, render } from "./templates.js";

/** What the install script of one stack build needs to know. */
export interface InstallScriptInput {
  stackName: string;
  version: string;
  target: string;
  /** Where the script installs without --prefix. */
  defaultPrefix: string;
  /** Module name: the tree holds `modules/<moduleName>/<version>.lua` (Lmod) and `.../<version>` (Tcl). */
  moduleName: string;
  /** The module systems the tree has modules for (default: both). */
  moduleSystems?: readonly ModuleSystem[];
  /** The base image the stack was built on, named when a node is refused (the manifest's `base_image`). */
  baseImage?: string;
}

/**
 * Why install.sh would refuse `prefix` (undefined when it accepts it), for messages before anything is built. The
 * rule (letters, digits and `/ . _ + , = -` only, no `.`/`..` components, not `/`, at most 200 characters) lives
 * with the stack file's validation, which refuses such a prefix first; the template checks the same (normalize_dir).
 */
export function prefixProblem(prefix: string): string | undefined {
  if (!prefix.startsWith("/")) return "must be an absolute path";
  return installPrefixProblem(prefix);
}

/** The install script template path, relative to the project root. */
export const INSTALL_TEMPLATE = "templates/install.sh.eta";

export async function loadInstallTemplate(root = projectRoot): Promise<string> {
  return readFile(`${root}/${INSTALL_TEMPLATE}`, "utf8");
}

/** A POSIX shell single-quoted word holding `value` exactly. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function requireLine(what: string, value: string): void {
  if (value === "" || /\p{Cc}/u.test(value)) {
    throw new InputError(
      `${what} ${JSON.stringify(value)} is not usable in the install script: it must be non-empty, without control characters`,
    );
  }
}

/** Render install.sh for one stack build. Pure: the template is loaded by the caller. */
export function renderInstallScript(input: InstallScriptInput, template: string): string {
  requireLine("stack name", input.stackName);
  requireLine("version", input.version);
  requireLine("target", input.target);
  requireLine("module name", input.moduleName);
  const problem = prefixProblem(input.defaultPrefix);
  if (problem !== undefined) {
    throw new InputError(
      `default prefix ${JSON.stringify(input.defaultPrefix)} is not usable by install.sh: it ${problem}`,
    );
  }
  return render(template, {
    stackName: shellQuote(input.stackName),
    version: shellQuote(input.version),
    target: shellQuote(input.target),
    defaultPrefix: shellQuote(input.defaultPrefix),
    moduleFiles: (input.moduleSystems ?? ["lmod", "tcl"])
      .map((system) => shellQuote(modulePath(system, input.moduleName, input.version)))
      .join(" "),
    moduleLoad: shellQuote(`${input.moduleName}/${input.version}`),
    baseImage: shellQuote(input.baseImage ?? "an unrecorded base image"),
    title: `${input.stackName} ${input.version} (${input.target})`,
  });
}
