import { resolve } from "node:path";
import { loadStack } from "../../config/index.js";
import { connectEngine, imageExists } from "../../docker/index.js";
import { verifyKit } from "../../kit/verify.js";

/**
 * `doctor --kit DIR [stack]`: can this host build the stack from the kit alone? The kit's files and signature
 * notes, its coverage of the stack, and whether the builder image is on the engine or will be loaded from the kit.
 */
export async function kitDoctor(dir: string, stackFile: string | undefined): Promise<number> {
  const kitDir = resolve(dir);
  const stack = stackFile === undefined ? undefined : await loadStack(stackFile);
  const verdict = await verifyKit(kitDir, stack === undefined ? {} : { stack });
  for (const note of verdict.notes) process.stdout.write(`note ${note}\n`);
  for (const problem of verdict.problems) process.stdout.write(`FAIL kit: ${problem}\n`);
  if (verdict.problems.length === 0)
    process.stdout.write(
      `ok   kit ${kitDir}: ${Object.keys(verdict.manifest.files).length} files match kit.json` +
        `${stack === undefined ? " (give the stack file to check that it covers it)" : `, it covers ${stack.file}`}\n`,
    );
  const engine = await connectEngine();
  for (const image of verdict.manifest.images) {
    const here = await imageExists(engine, image.tag);
    process.stdout.write(
      `ok   builder image ${image.tag} (${image.family}): ${here ? "on this engine" : `loaded from ${image.file} when a build starts`}\n`,
    );
  }
  if (verdict.problems.length > 0) return 1;
  process.stdout.write(
    stack === undefined
      ? "note give the stack file to say whether this host can build it from the kit alone\n"
      : `ok   this host can build ${stack.name} ${stack.version} from the kit alone: build ${stackFile} --kit ${dir}\n`,
  );
  return 0;
}
