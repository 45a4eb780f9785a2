/** `sha256sum` formats: SHA256SUMS (every regular file of the top directory) and the tarball's sidecar. */

/** Byte-order comparison, as `LC_ALL=C sort` orders. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** One `sha256sum` line; names with a backslash or newline are escaped as GNU coreutils does. */
export function sumLine(hex: string, name: string): string {
  if (!/[\\\n]/.test(name)) return `${hex}  ${name}\n`;
  return `\\${hex}  ${name.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n`;
}

/** SHA256SUMS content: one line per file, sorted by path. */
export function formatSums(files: ReadonlyMap<string, string> | Record<string, string>): string {
  const entries = files instanceof Map ? [...files.entries()] : Object.entries(files);
  return entries
    .sort(([a], [b]) => byteOrder(a, b))
    .map(([name, hex]) => sumLine(hex, name))
    .join("");
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
