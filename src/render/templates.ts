import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Eta } from "eta";

/** The template sources a plan is rendered from. Loaded once; rendering itself is pure. */
export interface Templates {
  dockerfile: string;
  /** templates/prepare-relocation.py: run in the build container before packing. */
  prepareRelocation: string;
}

/**
 * Project root (where package.json, docker/, templates/ and modules-templates/ live): the nearest directory above
 * this module with a package.json, whether it runs from src/, dist-js/ or a benchmark build.
 */
export const projectRoot = findRoot(dirname(fileURLToPath(import.meta.url)));

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) return start;
  }
}

export async function loadTemplates(root = projectRoot): Promise<Templates> {
  return {
    dockerfile: await readFile(`${root}/docker/Dockerfile.eta`, "utf8"),
    prepareRelocation: await readFile(`${root}/templates/prepare-relocation.py`, "utf8"),
  };
}

const eta = new Eta({ autoEscape: false, autoTrim: false, useWith: false });

/** Render an eta template string with `it` as its data. */
export function render(template: string, data: object): string {
  return eta.renderString(template, data);
}
