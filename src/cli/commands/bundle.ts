import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { makeBundle } from "../../bundle/make-bundle.js";
import { loadStack } from "../../config/index.js";
import { InputError } from "../../errors.js";
import { checkInputFile, checkOutputDir, targetList } from "../options.js";

export interface BundleFlags {
  target?: unknown;
  dist?: string;
  out?: string;
}

/**
 * `bundle <stack.yaml>`: the stack's target tarballs, built earlier into --dist (`<name>-<version>-<target>.tar.gz`),
 * verified and merged into one `<name>-<version>-<family>.tar.gz` in --out. The stack file gives the module's name,
 * variables and systems; the targets are the stack's, or --target's, in that order.
 */
export async function bundleCommand(stackFile: string, flags: BundleFlags): Promise<number> {
  await checkInputFile(stackFile, "stack file");
  const dist = resolve(flags.dist ?? "dist");
  const out = resolve(flags.out ?? dist);
  await checkOutputDir(out, "--out");
  const stack = await loadStack(stackFile);
  const targets = targetList(flags.target) ?? stack.targets;
  const unknown = targets.filter((t) => !stack.targets.includes(t));
  if (unknown.length > 0) {
    throw new InputError(`--target: ${unknown.join(", ")} not in the stack's targets (${stack.targets.join(", ")})`);
  }
  if (targets.length < 2) throw new InputError(`a bundle needs at least two targets, got ${targets.join(", ")}`);
  const tarballs = targets.map((target) => ({
    target,
    path: join(dist, `${stack.name}-${stack.version}-${target}.tar.gz`),
  }));
  for (const t of tarballs) await checkInputFile(t.path, `tarball of ${t.target}`);
  await mkdir(out, { recursive: true });
  const result = await makeBundle({ stack, tarballs, outDir: out });
  process.stdout.write(
    `${result.path}: ${result.bytes} bytes (the ${targets.length} target tarballs: ${result.inputBytes} bytes); ` +
      `${result.stored} files stored, ${result.linked} hard links to files identical in an earlier target\n`,
  );
  return 0;
}
