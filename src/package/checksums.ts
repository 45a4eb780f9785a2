/** Reading `sha256sum` lines (the checksums file of a tarball, written by templates/pack-tree.py), and byte order. */

/** Byte-order comparison, as `LC_ALL=C sort` orders. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Parses `sha256sum` output; returns the files and the lines it could not read. */
export function parseSums(text: string): { files: Map<string, string>; bad: string[] } {
  const files = new Map<string, string>();
  const bad: string[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const match = /^(\\?)([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!match) {
      bad.push(line);
      continue;
    }
    const [, escaped, hex, rawName] = match;
    const name = escaped ? rawName!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c)) : rawName!;
    files.set(name, hex!);
  }
  return { files, bad };
}
