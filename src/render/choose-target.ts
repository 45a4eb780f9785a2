import { readFile } from "node:fs/promises";
import { ARM_VENDORS } from "../targets/detect.js";
import { choiceTable } from "../targets/index.js";
import { luaString, type ModuleSystem, tclString } from "./module.js";
import { projectRoot, render } from "./templates.js";

/** The target choice templates (src/targets/choose.ts in Lua and in Tcl), relative to the project root. */
export const CHOOSER_TEMPLATES: Record<ModuleSystem, string> = {
  lmod: "modules-templates/choose-target.lua.eta",
  tcl: "modules-templates/choose-target.tcl.eta",
};

export async function loadChooserTemplate(system: ModuleSystem, root = projectRoot): Promise<string> {
  return readFile(`${root}/${CHOOSER_TEMPLATES[system]}`, "utf8");
}

/**
 * The target choice of a bundle of `targets` as Lua (`sf_choose(text, override, variable)` returning the target and
 * why, or nil and the message) or Tcl (`sf_choose text override variable` returning `{ok target why}` or
 * `{error "" message}`), with the feature table of src/targets/ rendered in, best first. Pure.
 */
export function renderChooser(targets: readonly string[], template: string, system: ModuleSystem): string {
  const quote = system === "lmod" ? luaString : tclString;
  const separator = system === "lmod" ? ", " : " ";
  const table = choiceTable(targets).map((row) => ({
    name: quote(row.name),
    family: quote(row.family),
    vendor: quote(row.vendor),
    checkable: system === "lmod" ? String(row.checkable) : row.checkable ? "1" : "0",
    features: row.features.map(quote).join(separator),
  }));
  const armVendors = Object.entries(ARM_VENDORS).map(([code, name]) => ({ code: quote(code), name: quote(name) }));
  return render(template, { table, armVendors }, CHOOSER_TEMPLATES[system]);
}
