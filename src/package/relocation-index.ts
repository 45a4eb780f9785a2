/** Reading the relocation index (`relocate.tsv`, format in layout.ts) into the manifest's JSON form. */
import { InputError } from "../errors.js";

/** Byte offsets of the build prefix in one binary file: each is overwritten with the new path, front-padded with `/`. */
export type RelocateEntry = { path: string; kind: "text" } | { path: string; kind: "binary"; offsets: number[] };

export function parseRelocateIndex(tsv: string): RelocateEntry[] {
  const entries: RelocateEntry[] = [];
  tsv.split("\n").forEach((raw, i) => {
    if (raw === "") return;
    const fields = raw.split("\t");
    const [kind, path] = fields;
    if (kind === "text" && fields.length === 2 && path) {
      entries.push({ path, kind });
    } else if (kind === "binary" && fields.length === 3 && path && /^\d+(,\d+)*$/.test(fields[2] ?? "")) {
      entries.push({ path, kind, offsets: fields[2]!.split(",").map(Number) });
    } else {
      throw new InputError(
        `relocate.tsv line ${i + 1}: ${JSON.stringify(raw.slice(0, 120))} is neither "text<TAB>path" nor "binary<TAB>path<TAB>offset[,offset...]"`,
      );
    }
  });
  return entries;
}
