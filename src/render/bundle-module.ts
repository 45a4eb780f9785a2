import { readFile } from "node:fs/promises";
import { loadChooserTemplate, renderChooser } from "./choose-target.js";
import {
  checkEnvVars,
  envStem,
  luaString,
  type ModuleInput,
  type ModuleSystem,
  requireAbsolutePrefix,
  requireModuleName,
  tclString,
} from "./module.js";
import { projectRoot, render } from "./templates.js";

/** What the module of a multi-target bundle needs: a stack build's module input, with all its targets. */
export type BundleModuleInput = Omit<ModuleInput, "target"> & { targets: string[] };

export const BUNDLE_MODULE_TEMPLATES: Record<ModuleSystem, string> = {
  lmod: "modules-templates/bundle.lua.eta",
  tcl: "modules-templates/bundle.tcl.eta",
};

/** The bundle module template of `system` and the target choice template it embeds. */
export async function loadBundleModuleTemplates(
  system: ModuleSystem,
  root = projectRoot,
): Promise<{ module: string; chooser: string }> {
  return {
    module: await readFile(`${root}/${BUNDLE_MODULE_TEMPLATES[system]}`, "utf8"),
    chooser: await loadChooserTemplate(system, root),
  };
}

/**
 * The module of a bundle for `system`: found from its own location like a single target's, it chooses the target
 * at load time (src/targets/choose.ts, rendered in) and loads `<prefix>/targets/<target>/view`. Pure.
 */
export function renderBundleModule(
  input: BundleModuleInput,
  templates: { module: string; chooser: string },
  system: ModuleSystem,
): string {
  requireAbsolutePrefix(input.defaultPrefix);
  requireModuleName(input.moduleName);
  if (input.targets.length === 0) throw new Error("a bundle module needs at least one target");
  const quote = system === "lmod" ? luaString : tclString;
  const stem = envStem(input.stackName);
  const env = checkEnvVars(input.envVars, stem);
  const help = [
    `${input.stackName} ${input.version}: ${input.description}`,
    `Targets: ${input.targets.join(", ")}`,
    "",
    "Root specs:",
    ...input.specs.map((s) => `  ${s}`),
    "",
    `The installation is found from this module's location; ${stem}_INSTALL_PREFIX overrides it.`,
    `The target is the most specific one this node can run; ${stem}_TARGET chooses another.`,
  ].join("\n");
  return render(
    templates.module,
    {
      comment: `${input.moduleName}/${input.version}`.replace(/[\r\n]/g, " "),
      stackName: quote(input.stackName),
      version: quote(input.version),
      label: quote(`${input.moduleName}/${input.version}`),
      description: quote(input.description),
      help: quote(help),
      targets: quote(input.targets.join(", ")),
      prefixVariable: quote(`${stem}_INSTALL_PREFIX`),
      rootVariable: quote(`${stem}_ROOT`),
      targetVariable: quote(`${stem}_TARGET`),
      recordedPrefix: quote(input.defaultPrefix),
      levelsUp: input.moduleName.split("/").length + 2,
      chooser: renderChooser(input.targets, templates.chooser, system),
      env: env.map(([name, value]) => ({ name: quote(name), value: quote(value) })),
    },
    BUNDLE_MODULE_TEMPLATES[system],
  );
}
