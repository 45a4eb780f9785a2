/**
 * The registry's credentials file (`username:` and `password:`), named by the factory settings. It is read as a
 * file the user names (a regular file, private: mode 0600 or 0400) and parsed with the guarded YAML reader (alias
 * bombs, control characters). Every message names the file, the line and the field, and never a value: not the
 * password, not a line of a file that is not what it should be (a bare password, a private key).
 */
import { isMap, isScalar } from "yaml";
import { ConfigError } from "../errors.js";
import { readUserFile } from "../fs/user-file.js";
import { readMapDocument } from "./load.js";
import { utf8Text } from "./utf8.js";

export interface RegistryCredentials {
  username: string;
  password: string;
}

const FIELDS = ["username", "password"] as const;

/** Read and check the registry's credentials file. */
export async function loadRegistryCredentials(file: string): Promise<RegistryCredentials> {
  const bytes = await readUserFile(file, { what: "the registry credentials file", private: true, maxBytes: 64 * 1024 });
  return parseRegistryCredentials(utf8Text(bytes, file), file);
}

/** Validate the credentials file's text. Pure; messages carry no value of the file. */
export function parseRegistryCredentials(text: string, file: string): RegistryCredentials {
  const { doc, at } = readMapDocument(text, file, {
    empty: "the credentials file is empty; it needs username: and password:",
    notMap: () => "the credentials file must be a map with username: and password: (its content is not shown)",
    secret: true,
  });
  const found: Partial<Record<(typeof FIELDS)[number], string>> = {};
  const issues: string[] = [];
  const contents = doc.contents;
  if (!isMap(contents)) throw new ConfigError(file, [`${at(0)}: expected a map with username: and password:`]);
  for (const pair of contents.items) {
    const keyNode = pair.key;
    const key = isScalar(keyNode) ? keyNode.value : undefined;
    if (key !== "username" && key !== "password") {
      // A key that is not a short name may be a secret pasted in the wrong place: it is not repeated.
      const name = typeof key === "string" && /^[A-Za-z_][A-Za-z0-9_-]{0,23}$/.test(key) ? ` ${key}` : "";
      issues.push(`${at(offset(keyNode))}${name}: unknown key (the file takes username: and password: only)`);
      continue;
    }
    const value = isScalar(pair.value) ? pair.value.value : undefined;
    if (typeof value !== "string" || value === "") {
      const quote = key === "password" ? " (quote it if YAML would read it as a number)" : "";
      issues.push(`${at(offset(pair.value ?? keyNode))} ${key}: expected a non-empty string${quote}`);
      continue;
    }
    found[key] = value;
  }
  for (const field of FIELDS) {
    if (found[field] === undefined && !issues.some((i) => i.includes(` ${field}:`)))
      issues.push(`${at(offset(contents))}: missing required key "${field}"`);
  }
  if (issues.length > 0) throw new ConfigError(file, issues);
  return { username: found.username as string, password: found.password as string };
}

/** Where a node starts in the text (0 when it has no place). */
function offset(node: unknown): number {
  return (node as { range?: [number] | null } | null)?.range?.[0] ?? 0;
}
