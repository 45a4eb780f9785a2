/**
 * The shipped JSON Schemas (schema/*.schema.json) under ajv, a real JSON Schema validator: what an editor with the
 * `# yaml-language-server: $schema=...` line would say of a file.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { parse } from "yaml";

const compiled = new Map<string, ValidateFunction>();

function validator(kind: "stack" | "factory"): ValidateFunction {
  let validate = compiled.get(kind);
  if (validate === undefined) {
    const schema = JSON.parse(readFileSync(resolve(`schema/${kind}.schema.json`), "utf8")) as object;
    validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
    compiled.set(kind, validate);
  }
  return validate;
}

/** The schema's complaints about a YAML text (an empty list when it accepts it). */
export function schemaErrors(kind: "stack" | "factory", yamlText: string): string[] {
  const validate = validator(kind);
  if (validate(parse(yamlText))) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params)}`);
}
