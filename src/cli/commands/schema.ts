import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { SCHEMA_FILES, SCHEMA_KINDS, type SchemaKind } from "../../config/json-schema.js";
import { InputError } from "../../errors.js";
import { projectRoot } from "../../project-root.js";

/** `schema [stack|factory]`: prints the shipped JSON Schema (the stack file's by default). */
export async function schemaCommand(kind: string | undefined): Promise<void> {
  const which = kind ?? "stack";
  if (!(SCHEMA_KINDS as readonly string[]).includes(which))
    throw new InputError(`schema: expected one of ${SCHEMA_KINDS.join(", ")}, got ${JSON.stringify(which)}`);
  process.stdout.write(await readFile(schemaPath(which as SchemaKind), "utf8"));
}

/** Where the package ships a schema. */
export function schemaPath(kind: SchemaKind): string {
  return join(projectRoot, SCHEMA_FILES[kind]);
}
