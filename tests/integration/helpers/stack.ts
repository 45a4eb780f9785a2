import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { schemaErrors } from "../../helpers/stack-schema.js";
import { TEST_IMAGE } from "./engine.js";

export const STANDIN = resolve("tests/fixtures/spack-standin");
/** The stand-in's spack-packages checkout (its builtin repository). */
export const SPACK_PACKAGES = resolve("tests/fixtures/spack-packages");
/** The `spack:` line of a test stack: the stand-in with its builtin packages. */
export const STANDIN_SPACK = `spack: { source: ${JSON.stringify(STANDIN)}, builtin: { source: ${JSON.stringify(SPACK_PACKAGES)} } }`;
export const CLI = resolve("dist-js/cli/main.js");

/** A temporary directory for one test file. */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `sf-${prefix}-`));
}

/**
 * Write a small stack file built with the Spack stand-in against the test image. `extra` is appended YAML
 * (top-level keys); `spack` replaces the default local stand-in checkout.
 */
export async function writeTestStack(
  dir: string,
  options: {
    name?: string;
    specs?: string[];
    targets?: string[];
    spack?: string;
    compiler?: string;
    extra?: string;
  } = {},
): Promise<string> {
  const file = join(dir, `${options.name ?? "tiny"}.yaml`);
  const specs = options.specs ?? ["hello", "zlib"];
  const lines = [
    `name: ${options.name ?? "tiny"}`,
    `version: "1.0"`,
    `specs: ${JSON.stringify(specs)}`,
    `targets: ${JSON.stringify(options.targets ?? ["x86_64_v3"])}`,
    `base_image: ${TEST_IMAGE}`,
    `compiler: ${options.compiler ?? "{ os: { packages: [gcc] } }"}`,
    options.spack ?? STANDIN_SPACK,
    options.extra ?? "",
  ];
  const text = `${lines.join("\n")}\n`;
  // Every stack the suite builds is one the shipped JSON Schema accepts (an editor would not flag it).
  const errors = schemaErrors("stack", text);
  if (errors.length > 0)
    throw new Error(`schema/stack.schema.json refuses the test stack ${file}: ${errors.join("; ")}`);
  await writeFile(file, text);
  return file;
}
