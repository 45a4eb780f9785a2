import { randomBytes } from "node:crypto";
import { link, lstat, mkdir, rm, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { InputError } from "../../errors.js";
import { renderStarterStack, starterName } from "../../render/starter-stack.js";
import { detectHostFromSystem } from "../../targets/index.js";
import { schemaPath } from "./schema.js";

/** The file `init` writes in its directory. */
export const STARTER_FILE = "stack.yaml";

/**
 * `init [DIR]`: writes DIR/stack.yaml, a starter stack for this host. Never overwrites: an existing stack.yaml (or
 * anything by that name) is refused with exit code 2, and the file appears whole or not at all.
 */
export async function initCommand(dir: string | undefined): Promise<void> {
  const where = resolve(dir ?? ".");
  const file = join(where, STARTER_FILE);
  if (await exists(file)) throw new InputError(`init: ${file} exists already; stack-factory init never overwrites`);
  const text = renderStarterStack({
    name: starterName(basename(where)),
    hostTarget: await detectHostFromSystem(),
    schema: schemaPath("stack"),
  });
  await mkdir(where, { recursive: true });
  await writeNew(file, text);
  process.stdout.write(`wrote ${file}\n`);
}

/** Written aside, then linked into place: link fails when the name was taken meanwhile, so nothing is overwritten. */
async function writeNew(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await writeFile(tmp, text, { flag: "wx" });
    await link(tmp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST")
      throw new InputError(`init: ${file} exists already; stack-factory init never overwrites`);
    throw error;
  } finally {
    await rm(tmp, { force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
