/**
 * JSON Schemas of the stack file and the factory settings file, generated from the valibot schemas the loaders use
 * (shipped as schema/*.schema.json; `stack-factory schema` prints them; editors read them through the
 * `# yaml-language-server: $schema=...` line). Where a valibot check cannot be written as JSON Schema, the schema
 * says less (it accepts more), never something else: every action or schema the converter does not know is dealt
 * with here by name, and anything new makes generation throw.
 */
import { toJsonSchema, type ConversionConfig, type JsonSchema } from "@valibot/to-json-schema";
import type * as v from "valibot";
import { MICROARCHS } from "../targets/catalogue.js";
import { FactorySchema } from "./factory.js";
import { isSafeName, StackSchema, TEXT_FIELDS } from "./schema.js";

export const SCHEMA_KINDS = ["stack", "factory"] as const;
export type SchemaKind = (typeof SCHEMA_KINDS)[number];

/** Where each schema is shipped, relative to the package root. */
export const SCHEMA_FILES: Record<SchemaKind, string> = {
  stack: "schema/stack.schema.json",
  factory: "schema/factory.schema.json",
};

type AnySchema = v.GenericSchema<unknown, unknown>;
type Entries = Record<string, AnySchema & { wrapped?: AnySchema }>;

/** isSafeName as a pattern: the safe characters, and no "..". */
const SAFE_NAME_PATTERN = "^(?!.*\\.\\.)[A-Za-z0-9_+][A-Za-z0-9._+-]*$";

/** The object schema of `strict(...)` (a guard, then the strict object) or a plain strict object. */
function entriesOf(schema: unknown): Entries {
  const s = schema as { entries?: Entries; pipe?: unknown[] };
  if (s.entries !== undefined) return s.entries;
  const object = s.pipe?.find((item) => (item as { entries?: unknown }).entries !== undefined);
  if (object === undefined) throw new Error("json-schema: expected an object schema");
  return (object as { entries: Entries }).entries;
}

/**
 * `compiler` picks its schema by the value's kind (a lazy schema), which the converter cannot follow: it is "os",
 * a compiler spec, or a map, the three schemas the getter gives for those.
 */
function compilerForms(): AnySchema[] {
  const lazy = entriesOf(StackSchema)["compiler"]?.wrapped as { getter: (input: unknown) => AnySchema } | undefined;
  if (lazy === undefined) throw new Error("json-schema: the stack schema has no compiler field");
  return [lazy.getter("os"), lazy.getter("gcc@13.3.0"), lazy.getter({ os: {} })];
}

function config(): ConversionConfig {
  const compiler = entriesOf(StackSchema)["compiler"]?.wrapped;
  const self: ConversionConfig = {
    // The pipes hold a guard (a list is no map) before the object schema; no transformation changes a type.
    typeMode: "output",
    errorMode: "throw",
    overrideAction: ({ valibotAction, jsonSchema }) => {
      const action = valibotAction as { type: string; requirement?: unknown };
      if (action.type === "check" && action.requirement === isSafeName)
        return { ...jsonSchema, pattern: SAFE_NAME_PATTERN };
      // Other checks (a known microarchitecture, absolute paths, distinct entries, one of two keys): say less.
      if (action.type === "check" || action.type === "raw_check") return { ...jsonSchema };
      return undefined;
    },
    overrideSchema: ({ valibotSchema }) => {
      if (valibotSchema.type === "custom") return {}; // A predicate: anything, as far as the schema can tell.
      if (valibotSchema === compiler)
        return { anyOf: compilerForms().map((form) => withoutDialect(toJsonSchema(form, self))) };
      if (valibotSchema.type === "lazy") throw new Error("json-schema: a lazy schema with no conversion of its own");
      return undefined;
    },
  };
  return self;
}

function withoutDialect(schema: JsonSchema): JsonSchema {
  const { $schema: _, ...rest } = schema;
  return rest;
}

/** The stack file's JSON Schema. */
export function stackJsonSchema(): JsonSchema {
  const schema = toJsonSchema(StackSchema, config()) as JsonSchema & { properties: Record<string, JsonSchema> };
  // The catalogue's names: the one check on targets that JSON Schema can say as it is.
  const targets = schema.properties["targets"] as { items: JsonSchema };
  targets.items = { ...targets.items, enum: MICROARCHS.map((m) => m.name) };
  // YAML reads `version: 25.05` as a number; the loader takes such a scalar as the text written.
  for (const path of TEXT_FIELDS) asText(schema, path);
  return finish(schema, "stack-factory stack file", "stack");
}

/** The factory settings file's JSON Schema. */
export function factoryJsonSchema(): JsonSchema {
  return finish(toJsonSchema(FactorySchema, config()), "stack-factory factory settings file", "factory");
}

export function jsonSchemaOf(kind: SchemaKind): JsonSchema {
  return kind === "stack" ? stackJsonSchema() : factoryJsonSchema();
}

/** The text shipped in schema/: what `stack-factory schema KIND` prints. */
export function jsonSchemaText(kind: SchemaKind): string {
  return `${JSON.stringify(jsonSchemaOf(kind), null, 2)}\n`;
}

function asText(schema: JsonSchema, path: readonly string[]): void {
  let node = schema as Record<string, unknown>;
  for (const key of path) {
    const next = (
      key === "*" ? node["additionalProperties"] : (node["properties"] as Record<string, unknown>)?.[key]
    ) as Record<string, unknown> | undefined;
    if (next === undefined) throw new Error(`json-schema: no field ${path.join(".")} in the stack schema`);
    node = next;
  }
  if (node["type"] !== "string") throw new Error(`json-schema: ${path.join(".")} is not a string field`);
  node["type"] = ["string", "number", "boolean"];
}

/** Dialect first, a title, no definitions left unused by the overrides. */
function finish(schema: JsonSchema, title: string, kind: SchemaKind): JsonSchema {
  const { $schema, $defs, ...rest } = schema as JsonSchema & { $defs?: Record<string, JsonSchema> };
  const text = JSON.stringify(rest);
  const used = Object.entries($defs ?? {}).filter(([id]) => text.includes(`"#/$defs/${id}"`));
  return {
    $schema,
    $comment: `Generated from stack-factory's own validation (src/config/json-schema.ts); ${SCHEMA_FILES[kind]}`,
    title,
    ...rest,
    ...(used.length === 0 ? {} : { $defs: Object.fromEntries(used) }),
  } as JsonSchema;
}
