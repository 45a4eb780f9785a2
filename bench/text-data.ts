/** Deterministic data for benchmark trees: the same bytes on every machine and every run. */

/** A deterministic generator (xorshift32). */
export function prng(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

const WORDS =
  "include define static const return library module spack view prefix build target compiler lib share bin optimize vector kernel solver matrix mesh thread".split(
    " ",
  );

/** About `size` bytes of compressible, source-like text. */
export function textBlock(random: () => number, size: number): Buffer {
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const line = Array.from(
      { length: 4 + Math.floor(random() * 10) },
      () => WORDS[Math.floor(random() * WORDS.length)],
    ).join(" ");
    parts.push(line);
    length += line.length + 1;
  }
  return Buffer.from(`${parts.join("\n")}\n`).subarray(0, size);
}
