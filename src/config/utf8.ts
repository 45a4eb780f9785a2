import { ConfigError } from "../errors.js";

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * A file's bytes as text, refusing any that are not valid UTF-8 (a Latin-1 byte would become U+FFFD silently and
 * reach names, paths and modules changed). The message names the line and column of the first bad byte.
 */
export function utf8Text(bytes: Buffer, file: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    let line = 1;
    let start = 0;
    const bad = firstInvalid(bytes);
    for (let i = 0; i < bad; i++) {
      if (bytes[i] === 0x0a) {
        line += 1;
        start = i + 1;
      }
    }
    const column = bytes.subarray(start, bad).toString("utf8").length + 1;
    const byte = `0x${(bytes[bad] ?? 0).toString(16).toUpperCase().padStart(2, "0")}`;
    throw new ConfigError(file, [
      `${file}:${line}:${column}: the byte ${byte} is not UTF-8 (a Latin-1 file?); save the file as UTF-8`,
    ]);
  }
}

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence (RFC 3629's table). */
function firstInvalid(bytes: Buffer): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    const length = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (length === 0) return i;
    const low = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
    const high = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
    for (let k = 1; k < length; k++) {
      const c = bytes[i + k];
      const [lo, hi] = k === 1 ? [low, high] : [0x80, 0xbf];
      if (c === undefined || c < lo || c > hi) return i;
    }
    i += length;
  }
  return bytes.length;
}
