/** Reading the relocation index (`relocate.tsv`, format in layout.ts) into the manifest's JSON form. */
import { InputError } from "../errors.js";

export interface Occurrence {
  offset: number;
  length: number;
  /** Hex of the C string after the build prefix. */
  suffix_hex: string;
}

export type RelocateEntry = { path: string; kind: "text" } | { path: string; kind: "binary"; occurrences: Occurrence[] };

function occurrence(field: string, line: number): Occurrence {
  const match = /^(\d+):(\d+):((?:[0-9a-f]{2})*)$/.exec(field);
  if (!match) throw new InputError(`relocate.tsv line ${line}: bad occurrence ${JSON.stringify(field)} (expected <offset>:<length>:<suffix-hex>)`);
  return { offset: Number(match[1]), length: Number(match[2]), suffix_hex: match[3] ?? "" };
}

export function parseRelocateIndex(tsv: string): RelocateEntry[] {
  const entries: RelocateEntry[] = [];
  tsv.split("\n").forEach((raw, i) => {
    if (raw === "") return;
    const fields = raw.split("\t");
    const [kind, path] = fields;
    if (kind === "text" && fields.length === 2 && path) {
      entries.push({ path, kind });
    } else if (kind === "binary" && fields.length === 3 && path && fields[2]) {
      entries.push({ path, kind, occurrences: fields[2].split(",").map((f) => occurrence(f, i + 1)) });
    } else {
      throw new InputError(
        `relocate.tsv line ${i + 1}: ${JSON.stringify(raw.slice(0, 120))} is neither "text<TAB>path" nor "binary<TAB>path<TAB>occurrences"`,
      );
    }
  });
  return entries;
}
