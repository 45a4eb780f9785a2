/**
 * The starter stack file `stack-factory init` writes: this host's microarchitecture, the default base image, one
 * small spec, every line commented, and the line YAML editors read to check it against the shipped JSON Schema.
 * Pure: the caller detects the host and finds the schema.
 */
import { DEFAULT_BASE_IMAGE, isSafeName } from "../config/schema.js";
import { getMicroarch, MICROARCHS } from "../targets/index.js";

export interface StarterInput {
  /** The stack's name (from the directory's name); a name the stack file takes as it is. */
  name: string;
  /** This host's microarchitecture (`stack-factory targets --host`). */
  hostTarget: string;
  /** The stack JSON Schema's path or URL, for `# yaml-language-server: $schema=`. */
  schema: string;
}

/** A directory name as a stack name: unsafe characters become "-", and an unusable result "my-stack". */
export function starterName(dirName: string): string {
  const name = dirName
    .replace(/[^A-Za-z0-9._+-]+/g, "-")
    .replace(/^[.-]+/, "")
    .replace(/\.\.+/g, ".");
  return isSafeName(name) ? name : "my-stack";
}

export function renderStarterStack(input: StarterInput): string {
  const host = getMicroarch(input.hostTarget);
  if (host === undefined) throw new Error(`starter stack: unknown microarchitecture ${input.hostTarget}`);
  if (!isSafeName(input.name)) throw new Error(`starter stack: unsafe name ${input.name}`);
  if (/[\r\n]/.test(input.schema)) throw new Error("starter stack: the schema path holds a line break");
  const generic = MICROARCHS.filter((m) => m.family === host.family && m.vendor === "generic").map((m) => m.name);
  return `# yaml-language-server: $schema=${input.schema}
# A starter stack for stack-factory. Build it with \`stack-factory build stack.yaml\`; check it with
# \`stack-factory plan stack.yaml --out plan\`. Every key: examples/slurm.yaml of stack-factory, or
# \`stack-factory schema stack\`.

# Names the tarballs (<name>-<version>-<target>.tar.gz) and the Lmod module (module load <name>).
name: ${input.name}
version: "1.0"
description: A starter stack

# Spack specs to install, as on \`spack install\`'s command line.
specs:
  - zlib

# One tarball per microarchitecture (\`stack-factory targets\` lists them). This host is ${host.name} (${host.family});
# for nodes of any generation of this family use a generic level: ${generic.join(", ")}.
targets:
  - ${host.name}

# The image the stack is built on; the nodes need its glibc or a newer one.
base_image: ${DEFAULT_BASE_IMAGE}

# \`os\`: the base image's own gcc. Or a Spack compiler spec such as gcc@13.3.0, which Spack builds first.
compiler: os
`;
}
