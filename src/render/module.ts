import { readFile } from "node:fs/promises";
import { InputError } from "../errors.js";
import { projectRoot, render } from "./templates.js";
import { moduleStem } from "../config/guards.js";
import { ENV_NAME } from "../config/schema.js";

/** What the module (Lmod or Tcl) of one stack build needs to know. */
export interface ModuleInput {
  stackName: string;
  version: string;
  /** Module name: the module is installed at `<prefix>/modules/<moduleName>/<version>.lua` (Tcl: without `.lua`). */
  moduleName: string;
  target: string;
  /** The stack's default install prefix; the module's recorded prefix until install.sh rewrites it. */
  defaultPrefix: string;
  /** The stack's own variables; the token `${PREFIX}` in a value expands to the resolved prefix at load time. */
  envVars: Record<string, string>;
  description: string;
  specs: string[];
}

/** The module template paths, relative to the project root. */
export const MODULE_TEMPLATE = "modules-templates/module.lua.eta";
export const TCL_MODULE_TEMPLATE = "modules-templates/module.tcl.eta";

/** Variables the module never sets: the view's RPATHs make them unnecessary and they break other software. */
const FORBIDDEN_VARS = ["LD_LIBRARY_PATH", "LD_PRELOAD", "LD_RUN_PATH"];

export async function loadModuleTemplate(root = projectRoot, system: "lmod" | "tcl" = "lmod"): Promise<string> {
  return readFile(`${root}/${system === "lmod" ? MODULE_TEMPLATE : TCL_MODULE_TEMPLATE}`, "utf8");
}

/**
 * The upper-case stem of the stack's environment variables: `hello-world` → `HELLO_WORLD`
 * (`<NAME>_ROOT`, `<NAME>_INSTALL_PREFIX`). A leading digit gets a `_` in front, as a variable name needs.
 */
export function envStem(stackName: string): string {
  return moduleStem(stackName);
}

/**
 * A Lua double-quoted string literal holding `value` exactly: backslash, quote and control characters are
 * escaped (decimal escapes, three digits so a following digit cannot join them); other bytes pass as they are.
 */
export function luaString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === "\\") out += "\\\\";
    else if (ch === '"') out += '\\"';
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\${String(code).padStart(3, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

export function requireAbsolutePrefix(prefix: string): void {
  if (!prefix.startsWith("/") || /["\\\p{Cc}]/u.test(prefix)) {
    throw new InputError(
      `default prefix ${JSON.stringify(prefix)} is not usable: it must be an absolute path without quotes, backslashes or control characters`,
    );
  }
}

export function requireModuleName(moduleName: string): void {
  const parts = moduleName.split("/");
  if (moduleName === "" || parts.some((p) => p === "" || p === "." || p === "..")) {
    throw new InputError(
      `module name ${JSON.stringify(moduleName)} is not usable: it must be one or more non-empty path segments other than '.' and '..'`,
    );
  }
}

export function checkEnvVars(envVars: Record<string, string>, stem: string): Array<[string, string]> {
  const reserved = [...FORBIDDEN_VARS, `${stem}_ROOT`, `${stem}_INSTALL_PREFIX`, `${stem}_TARGET`];
  return Object.entries(envVars).map(([name, value]) => {
    if (!ENV_NAME.test(name)) {
      throw new InputError(
        `module environment variable ${JSON.stringify(name)} is not a valid name (letters, digits, '_', not starting with a digit)`,
      );
    }
    if (reserved.includes(name)) {
      throw new InputError(
        `module environment variable ${name} cannot be set by a stack; reserved: ${reserved.join(", ")}`,
      );
    }
    return [name, value];
  });
}

/** The module systems the factory writes modules for: Lmod (Lua) and Environment Modules (Tcl). */
export const MODULE_SYSTEMS = ["lmod", "tcl"] as const;
export type ModuleSystem = (typeof MODULE_SYSTEMS)[number];

/** Where a module of `system` lies, relative to the tarball's top directory (Lmod prefers the .lua of the two). */
export function modulePath(system: ModuleSystem, moduleName: string, version: string): string {
  return `modules/${moduleName}/${version}${system === "lmod" ? ".lua" : ""}`;
}

/**
 * A Tcl double-quoted word holding `value` exactly: `\`, `"`, `$`, `[`, `]`, braces and control characters are
 * escaped (control characters as `\u` with four hex digits, so a following hex digit cannot join them); nothing in
 * the word is substituted. Other characters pass as they are.
 */
export function tclString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if ('\\"$[]{}'.includes(ch)) out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

const QUOTE: Record<ModuleSystem, (value: string) => string> = { lmod: luaString, tcl: tclString };

/** Render the module of one stack build for `system` (Lmod by default). Pure: the template is loaded by the caller. */
export function renderModule(input: ModuleInput, template: string, system: ModuleSystem = "lmod"): string {
  requireAbsolutePrefix(input.defaultPrefix);
  requireModuleName(input.moduleName);
  const quote = QUOTE[system];
  const stem = envStem(input.stackName);
  const env = checkEnvVars(input.envVars, stem);
  const help = [
    `${input.stackName} ${input.version}: ${input.description}`,
    `Target: ${input.target}`,
    "",
    "Root specs:",
    ...input.specs.map((s) => `  ${s}`),
    "",
    `The installation is found from this module's location; ${stem}_INSTALL_PREFIX overrides it.`,
  ].join("\n");
  return render(template, {
    comment: `${input.moduleName}/${input.version}`.replace(/[\r\n]/g, " "),
    stackName: quote(input.stackName),
    version: quote(input.version),
    target: quote(input.target),
    label: quote(`${input.moduleName}/${input.version}`),
    description: quote(input.description),
    help: quote(help),
    prefixVariable: quote(`${stem}_INSTALL_PREFIX`),
    rootVariable: quote(`${stem}_ROOT`),
    recordedPrefix: quote(input.defaultPrefix),
    // <prefix>/modules/<moduleName...>/<version>[.lua]: one level per segment, plus modules/ and the file itself.
    levelsUp: input.moduleName.split("/").length + 2,
    env: env.map(([name, value]) => ({ name: quote(name), value: quote(value) })),
  });
}
