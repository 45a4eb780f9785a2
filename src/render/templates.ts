import { projectRoot } from "../project-root.js";
import { readFile } from "node:fs/promises";
import { Eta } from "eta";

/** The template sources a plan is rendered from. Loaded once; rendering itself is pure. */
export interface Templates {
  dockerfile: string;
  /** templates/prepare-relocation.py: run in the build container before packing. */
  prepareRelocation: string;
  /** templates/install.sh.eta: the tarball's install script. */
  installScript: string;
  /** modules-templates/module.lua.eta: the tarball's Lmod module. */
  module: string;
  /** modules-templates/module.tcl.eta: the tarball's Environment Modules (Tcl) modulefile. */
  tclModule: string;
}

export { projectRoot };

export async function loadTemplates(root = projectRoot): Promise<Templates> {
  return {
    dockerfile: await readFile(`${root}/docker/Dockerfile.eta`, "utf8"),
    prepareRelocation: await readFile(`${root}/templates/prepare-relocation.py`, "utf8"),
    installScript: await readFile(`${root}/templates/install.sh.eta`, "utf8"),
    module: await readFile(`${root}/modules-templates/module.lua.eta`, "utf8"),
    tclModule: await readFile(`${root}/modules-templates/module.tcl.eta`, "utf8"),
  };
}

const eta = new Eta({ autoEscape: false, autoTrim: false, useWith: false });

/**
 * Render an eta template string with `it` as its data. The data is strict: a template that reads a variable its
 * input does not have (a typo, a renamed field) fails here, naming it, instead of rendering "undefined".
 */
export function render<T extends object>(template: string, data: T, name = "template"): string {
  const strict = new Proxy(data, {
    get(target, key, receiver) {
      if (typeof key === "string" && !(key in target)) {
        throw new TemplateVariableError(name, key, Object.keys(target));
      }
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  return eta.renderString(template, strict);
}

export class TemplateVariableError extends Error {
  constructor(
    readonly template: string,
    readonly variable: string,
    known: string[],
  ) {
    super(`${template} reads it.${variable}, which its input does not have (it has: ${known.sort().join(", ")})`);
  }
}

/** The names a template reads from its input (`it.<name>`), for tests that hold inputs and templates together. */
export function variablesOf(template: string): string[] {
  return [...new Set([...template.matchAll(/\bit\.([A-Za-z_$][\w$]*)/g)].map((m) => m[1] as string))].sort();
}
