/**
 * The search-path tags of ELF files (DT_RPATH, DT_RUNPATH): what prepare-relocation.py records for every ELF file of
 * a view (`dynamic-tags.tsv`, carried as the manifest's `dynamic_tags`) and what the verifier reads back from the
 * tarball as it streams by. Spack links with DT_RPATH, which LD_LIBRARY_PATH cannot override; a DT_RPATH turned
 * into a DT_RUNPATH (what `patchelf --set-rpath` does without `--force-rpath`) lets any LD_LIBRARY_PATH a cluster
 * module sets replace the view's libraries.
 */
import { InputError } from "../errors.js";

export const DYNAMIC_TAGS = ["RPATH", "RUNPATH", "RPATH+RUNPATH", "none"] as const;
export type DynamicTag = (typeof DYNAMIC_TAGS)[number];

const isTag = (value: unknown): value is DynamicTag => DYNAMIC_TAGS.includes(value as DynamicTag);

/** `dynamic-tags.tsv` (`<path><TAB><tag>` a line) as the manifest's `dynamic_tags` object. */
export function parseDynamicTags(tsv: string): Record<string, DynamicTag> {
  const tags: Record<string, DynamicTag> = {};
  tsv.split("\n").forEach((line, i) => {
    if (line === "") return;
    const [path, tag, ...rest] = line.split("\t");
    if (!path || !isTag(tag) || rest.length > 0)
      throw new InputError(
        `dynamic-tags.tsv line ${i + 1}: ${JSON.stringify(line.slice(0, 120))} is not "<path><TAB>${DYNAMIC_TAGS.join("|")}"`,
      );
    tags[path] = tag;
  });
  return tags;
}

/** The first bytes of a file kept to find its program headers (they follow the ELF header in practice). */
const HEAD_BYTES = 64 * 1024;
const PT_DYNAMIC = 2;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

export type TagReading = { elf: false } | { elf: true; tag: DynamicTag } | { elf: true; problem: string };

interface Layout {
  is64: boolean;
  le: boolean;
}

/**
 * Reads the dynamic tag of one file from its bytes in order (a tar entry's body), keeping only its first 64 KiB and
 * its dynamic segment: the ELF header, the program headers, then the PT_DYNAMIC segment's entries, as the dynamic
 * loader reads them.
 */
export class DynamicTagReader {
  /** Allocated once the file starts like an ELF file (most files of a view do not). */
  private headBuffer: Buffer | undefined;
  private headLength = 0;
  private seen = 0;
  private layout: Layout | undefined;
  /** The dynamic segment: its offset in the file, its bytes, and up to which file offset they are copied. */
  private dynamic: { start: number; bytes: Buffer; covered: number } | undefined;
  private result: TagReading | undefined;

  push(chunk: Buffer): void {
    if (this.result !== undefined) return;
    if (this.headBuffer === undefined) {
      if (this.seen === 0 && chunk.length >= 4 && chunk.readUInt32BE(0) !== 0x7f454c46) {
        this.result = { elf: false };
        return;
      }
      this.headBuffer = Buffer.alloc(HEAD_BYTES);
    }
    const at = this.seen;
    this.seen += chunk.length;
    if (this.headLength < HEAD_BYTES) {
      this.headLength += chunk.copy(this.headBuffer, this.headLength, 0, HEAD_BYTES - this.headLength);
      if (this.dynamic === undefined) this.readHeaders(false);
    }
    if (this.dynamic !== undefined && this.result === undefined) this.copy(chunk, at);
  }

  /** Copies what a chunk at file offset `at` holds of the dynamic segment (bytes come in order: no gaps). */
  private copy(chunk: Buffer, at: number): void {
    const dyn = this.dynamic!;
    const from = Math.max(at, dyn.start);
    const to = Math.min(at + chunk.length, dyn.start + dyn.bytes.length);
    if (from >= to || from > dyn.covered) return;
    chunk.copy(dyn.bytes, from - dyn.start, from - at, to - at);
    dyn.covered = Math.max(dyn.covered, to);
  }

  finish(): TagReading {
    if (this.result === undefined && this.dynamic === undefined) this.readHeaders(true);
    if (this.result !== undefined) return this.result;
    const dyn = this.dynamic!;
    if (dyn.covered < dyn.start + dyn.bytes.length)
      return { elf: true, problem: "its dynamic segment lies beyond its end" };
    return { elf: true, tag: this.tagOf(dyn.bytes) };
  }

  /** Parses the ELF header and program headers once enough of the head is here (or the file ended). */
  private readHeaders(ended: boolean): void {
    const h = (this.headBuffer ?? Buffer.alloc(0)).subarray(0, this.headLength);
    if (h.length < 4 && !ended) return;
    if (h.length < 4 || h.readUInt32BE(0) !== 0x7f454c46) {
      this.result = { elf: false };
      return;
    }
    if (h.length < 64) {
      if (ended) this.result = { elf: true, problem: "its ELF header is incomplete" };
      return;
    }
    if ((h[4] !== 1 && h[4] !== 2) || (h[5] !== 1 && h[5] !== 2)) {
      this.result = { elf: true, problem: "its ELF header names an unknown class or byte order" };
      return;
    }
    const layout = { is64: h[4] === 2, le: h[5] === 1 };
    this.layout = layout;
    const u16 = (o: number) => (layout.le ? h.readUInt16LE(o) : h.readUInt16BE(o));
    const u32 = (o: number) => (layout.le ? h.readUInt32LE(o) : h.readUInt32BE(o));
    const word = (o: number) =>
      layout.is64 ? Number(layout.le ? h.readBigUInt64LE(o) : h.readBigUInt64BE(o)) : u32(o);
    const phoff = word(layout.is64 ? 32 : 28);
    const [phentsize, phnum] = layout.is64 ? [u16(54), u16(56)] : [u16(42), u16(44)];
    const end = phoff + phentsize * phnum;
    if (end > HEAD_BYTES) {
      this.result = { elf: true, problem: "its program headers lie beyond its first 64 KiB" };
      return;
    }
    if (h.length < end) {
      if (ended) this.result = { elf: true, problem: "its program headers lie beyond its end" };
      return;
    }
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      if (u32(at) !== PT_DYNAMIC) continue;
      const offset = word(at + (layout.is64 ? 8 : 4));
      const size = word(at + (layout.is64 ? 32 : 16));
      if (size > 1 << 24) {
        this.result = { elf: true, problem: `its dynamic segment claims ${size} bytes` };
        return;
      }
      this.dynamic = { start: offset, bytes: Buffer.alloc(size), covered: offset };
      // The head holds every byte seen so far (headers are read before it is full).
      this.copy(h, 0);
      return;
    }
    this.result = { elf: true, tag: "none" };
  }

  private tagOf(bytes: Buffer): DynamicTag {
    const { is64, le } = this.layout!;
    const step = is64 ? 16 : 8;
    let rpath = false;
    let runpath = false;
    for (let at = 0; at + step <= bytes.length; at += step) {
      const tag = is64
        ? Number(le ? bytes.readBigInt64LE(at) : bytes.readBigInt64BE(at))
        : le
          ? bytes.readInt32LE(at)
          : bytes.readInt32BE(at);
      if (tag === 0) break;
      if (tag === DT_RPATH) rpath = true;
      if (tag === DT_RUNPATH) runpath = true;
    }
    return rpath && runpath ? "RPATH+RUNPATH" : rpath ? "RPATH" : runpath ? "RUNPATH" : "none";
  }
}

/**
 * Problems between the manifest's `dynamic_tags` and what the archive's view holds (`found`: path → reading of every
 * view file that starts like an ELF file). Without a record (a tarball of an older factory) nothing is compared.
 */
export function dynamicTagProblems(recorded: unknown, found: ReadonlyMap<string, TagReading>): string[] {
  if (recorded === undefined) return [];
  if (typeof recorded !== "object" || recorded === null || Array.isArray(recorded))
    return ["manifest.json: dynamic_tags is not an object of path → RPATH|RUNPATH|RPATH+RUNPATH|none"];
  const record = new Map(Object.entries(recorded as Record<string, unknown>));
  const problems: string[] = [];
  for (const [path, reading] of found) {
    if (!reading.elf) continue;
    const want = record.get(path);
    // A file that only starts like an ELF file loads nothing: it matters only when the record names it.
    if ("problem" in reading) {
      if (want !== undefined) problems.push(`${path}: cannot read its dynamic tag: ${reading.problem}`);
    } else if (want === undefined)
      problems.push(`${path}: an ELF file that manifest.json's dynamic_tags does not list`);
    else if (want !== reading.tag)
      problems.push(
        `${path}: linked with ${want}, now ${reading.tag}${want === "RPATH" && reading.tag === "RUNPATH" ? " (LD_LIBRARY_PATH would override the view's libraries)" : ""}`,
      );
  }
  for (const [path, want] of record) {
    if (!isTag(want)) problems.push(`manifest.json: dynamic_tags of ${path} is ${JSON.stringify(want)}`);
    else if (!found.get(path)?.elf)
      problems.push(`manifest.json lists the dynamic tag of ${path}, not an ELF file of the archive`);
  }
  return problems;
}
