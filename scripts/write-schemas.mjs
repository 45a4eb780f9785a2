// Writes schema/stack.schema.json and schema/factory.schema.json from the valibot schemas (through the compiled
// dist-js: run `npm run build` first, or `npm run schemas`). tests/unit/json-schema.test.ts fails while they differ.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { SCHEMA_FILES, SCHEMA_KINDS, jsonSchemaText } = await import(join(root, "dist-js/config/json-schema.js"));
for (const kind of SCHEMA_KINDS) {
  const file = join(root, SCHEMA_FILES[kind]);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, jsonSchemaText(kind));
  console.log(`wrote ${SCHEMA_FILES[kind]}`);
}
