import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Eta } from "eta";

/** The template sources a plan is rendered from. Loaded once; rendering itself is pure. */
export interface Templates {
  dockerfile: string;
}

/** Project root (where docker/, templates/ and modules-templates/ live), from src/ or dist-js/. */
export const projectRoot = fileURLToPath(new URL("../../", import.meta.url));

export async function loadTemplates(root = projectRoot): Promise<Templates> {
  return { dockerfile: await readFile(`${root}/docker/Dockerfile.eta`, "utf8") };
}

const eta = new Eta({ autoEscape: false, autoTrim: false, useWith: false });

/** Render an eta template string with `it` as its data. */
export function render(template: string, data: object): string {
  return eta.renderString(template, data);
}
