import { ensureImage, runOneShot, type Engine } from "../docker/index.js";
import type { ImagePlan } from "../plan/types.js";

/** What a real Spack needs of the builder image to concretize without the network. */
export interface ImageReadiness {
  /** `python3 --version`, or undefined when the image has no python3. */
  python?: string;
  /** clingo's version when `import clingo` works in that python3. */
  clingo?: string;
}

/**
 * Builds (or reuses) the builder image and asks it for python3 and clingo. Spack's concretizer needs the clingo
 * module: without it Spack bootstraps clingo from the network, which an air-gapped factory cannot do.
 */
export async function checkBuilderImage(
  engine: Engine,
  image: ImagePlan,
  signal?: AbortSignal,
): Promise<ImageReadiness> {
  await ensureImage(engine, { tag: image.tag, files: image.files, ...(signal === undefined ? {} : { signal }) });
  const out: Buffer[] = [];
  const probe =
    "import sys\nprint(sys.version.split()[0])\ntry:\n    import clingo\n    print(clingo.__version__)\nexcept Exception:\n    print('')\n";
  const { exitCode } = await runOneShot(engine, {
    image: image.tag,
    cmd: ["python3", "-c", probe],
    onStdout: (c: Buffer) => out.push(c),
    ...(signal === undefined ? {} : { signal }),
  });
  if (exitCode !== 0) return {};
  const [python, clingo] = Buffer.concat(out).toString("utf8").split("\n");
  return { ...(python ? { python } : {}), ...(clingo ? { clingo } : {}) };
}
