import { readFile } from "node:fs/promises";
import { InputError } from "../errors.js";
import { ARM_VENDORS } from "../targets/detect.js";
import { choiceTable } from "../targets/index.js";
import { prefixProblem, shellQuote } from "./install-script.js";
import { envStem, type ModuleSystem, modulePath } from "./module.js";
import { projectRoot, render } from "./templates.js";

export const BUNDLE_INSTALL_TEMPLATE = "templates/bundle-install.sh.eta";

export async function loadBundleInstallTemplate(root = projectRoot): Promise<string> {
  return readFile(`${root}/${BUNDLE_INSTALL_TEMPLATE}`, "utf8");
}

export interface BundleInstallInput {
  stackName: string;
  version: string;
  moduleName: string;
  defaultPrefix: string;
  targets: string[];
  moduleSystems: readonly ModuleSystem[];
}

/** The bundle's install.sh (pure): the target table of src/targets/ is rendered in, as the modules carry it. */
export function renderBundleInstall(input: BundleInstallInput, template: string): string {
  const problem = prefixProblem(input.defaultPrefix);
  if (problem !== undefined) {
    throw new InputError(
      `default prefix ${JSON.stringify(input.defaultPrefix)} is not usable by install.sh: it ${problem}`,
    );
  }
  const table = choiceTable(input.targets)
    .map((r) => [r.name, r.family, r.vendor, r.checkable ? "1" : "0", r.features.join(" ")].join("\t"))
    .join("\n");
  return render(
    template,
    {
      title: `${input.stackName} ${input.version} (${input.targets.join(", ")})`.replace(/[\r\n]/g, " "),
      stackName: shellQuote(input.stackName),
      version: shellQuote(input.version),
      defaultPrefix: shellQuote(input.defaultPrefix),
      moduleFiles: input.moduleSystems.map((s) => shellQuote(modulePath(s, input.moduleName, input.version))).join(" "),
      moduleLoad: shellQuote(`${input.moduleName}/${input.version}`),
      targetVariable: shellQuote(`${envStem(input.stackName)}_TARGET`),
      targetTable: shellQuote(table),
      armVendors: Object.entries(ARM_VENDORS).map(([code, name]) => ({
        code: shellQuote(code),
        name: shellQuote(name),
      })),
    },
    BUNDLE_INSTALL_TEMPLATE,
  );
}
