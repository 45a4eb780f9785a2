/**
 * A strict reader of tar streams for the verifier. It reads headers the way GNU tar does (ustar prefix only with
 * the POSIX magic, pax `x` records and GNU `L`/`K` long names applied to the next entry, the first zero block
 * ends the archive) and refuses, as a TarProblem, every construct GNU tar would give a meaning the factory never
 * writes: other extended headers (pax global `g`, Solaris `X`), sparse/volume/multi-volume/dumpdir types, unknown
 * types, pax keywords beyond the plain ones, data on non-file entries, and bytes after the end-of-archive marker.
 * A TarProblem means the rest of the archive cannot be judged; the caller stops reading entries.
 */

/** Why the archive as a whole cannot be judged the way GNU tar will extract it. */
export class TarProblem extends Error {}

export type TarEntryType =
  | "file"
  | "directory"
  | "symlink"
  | "link"
  | "character-device"
  | "block-device"
  | "fifo"
  | "contiguous-file";

export interface TarEntry {
  /** The name GNU tar would use, as written (not normalised). */
  name: string;
  type: TarEntryType;
  /** Permission bits and setuid/setgid/sticky (the header's mode & 0o7777). */
  mode: number;
  size: number;
  linkname: string;
  /** Owner as GNU tar run as root would restore it (pax values over the header's). */
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** The body of a regular file, read as it streams; must be consumed before the next entry is asked for. */
  body: AsyncIterable<Buffer>;
}

const BLOCK = 512;
/** Extended headers (pax records, GNU long names) are read into memory: refuse absurd sizes. */
const MAX_EXTENDED_BYTES = 1024 * 1024;
/** pax keywords GNU tar applies that only restate what a ustar header says. Everything else is refused. */
const PAX_KEYS = new Set(["path", "linkpath", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname"]);

const TYPES = new Map<string, TarEntryType>([
  ["0", "file"],
  ["\0", "file"],
  ["1", "link"],
  ["2", "symlink"],
  ["3", "character-device"],
  ["4", "block-device"],
  ["5", "directory"],
  ["6", "fifo"],
  ["7", "contiguous-file"],
]);

/** Entry types GNU tar gives a special meaning; none is ever written by the factory. */
const SPECIAL = new Map<string, string>([
  ["g", "a pax global header ('g'): GNU tar applies its keywords, a path among them, to the entries after it"],
  ["X", "a Solaris extended header ('X'): GNU tar reads it as a pax header and applies its path to the next entry"],
  ["S", "a GNU sparse file ('S'): GNU tar rebuilds its content from a sparse map"],
  ["M", "a GNU multi-volume continuation ('M')"],
  ["V", "a GNU volume label ('V')"],
  ["D", "a GNU dump directory ('D'): GNU tar may delete files not listed in it"],
  ["N", "an old GNU long-names entry ('N')"],
  ["A", "a Solaris access-control-list entry ('A')"],
  ["E", "a Solaris extended attribute entry ('E')"],
  ["I", "an inode-only entry ('I')"],
]);

const utf8 = new TextDecoder("utf-8", { fatal: true });

function text(bytes: Uint8Array, what: string, at: number): string {
  if (bytes.includes(0))
    throw new TarProblem(`${what} at byte ${at} contains a NUL byte (GNU tar would cut the name there)`);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new TarProblem(`${what} at byte ${at} is not valid UTF-8`);
  }
}

/** A NUL-terminated header field. */
function field(block: Buffer, offset: number, length: number): Buffer {
  const slice = block.subarray(offset, offset + length);
  const end = slice.indexOf(0);
  return end === -1 ? slice : slice.subarray(0, end);
}

/** A numeric header field: octal (leading spaces, then digits, then only NUL/space) or positive base-256. */
function number(block: Buffer, offset: number, length: number, what: string, at: number): number {
  const slice = block.subarray(offset, offset + length);
  if (slice[0] === 0x80) {
    let value = 0;
    for (const byte of slice.subarray(1)) value = value * 256 + byte;
    if (!Number.isSafeInteger(value)) throw new TarProblem(`the ${what} of the header at byte ${at} is too large`);
    return value;
  }
  const match = /^ *([0-7]+)[ \0]*$/.exec(slice.toString("latin1"));
  if (match === null)
    throw new TarProblem(
      `the ${what} of the header at byte ${at} is not an octal number (${JSON.stringify(slice.toString("latin1"))})`,
    );
  const value = parseInt(match[1]!, 8);
  if (!Number.isSafeInteger(value)) throw new TarProblem(`the ${what} of the header at byte ${at} is too large`);
  return value;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0 && (i < 148 || i >= 156)) return false;
  return true;
}

function checksumOk(block: Buffer, at: number): boolean {
  const recorded = number(block, 148, 8, "checksum", at);
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += block[i]!;
  return sum === recorded;
}

/** pax records: `<length> <key>=<value>\n`, each exactly its length, every byte of the header used. */
function paxRecords(data: Buffer, at: number): Map<string, string> {
  const records = new Map<string, string>();
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    const digits = space === -1 ? "" : data.subarray(offset, space).toString("latin1");
    const length = /^[1-9][0-9]*$/.test(digits) ? Number(digits) : NaN;
    if (!Number.isSafeInteger(length) || offset + length > data.length || data[offset + length - 1] !== 0x0a) {
      throw new TarProblem(`the pax header at byte ${at} has a malformed record at offset ${offset}`);
    }
    const record = data.subarray(space + 1, offset + length - 1);
    const equals = record.indexOf(0x3d);
    if (equals <= 0) throw new TarProblem(`the pax header at byte ${at} has a record without a keyword`);
    const key = record.subarray(0, equals).toString("latin1");
    if (!PAX_KEYS.has(key)) {
      throw new TarProblem(
        `the pax header at byte ${at} has the keyword ${JSON.stringify(key)}, which GNU tar would act on (only ${[...PAX_KEYS].join(", ")} are allowed)`,
      );
    }
    if (records.has(key)) throw new TarProblem(`the pax header at byte ${at} gives ${key} twice`);
    records.set(key, text(record.subarray(equals + 1), `the pax ${key}`, at));
    offset += length;
  }
  return records;
}

/** Exact-length reads over a stream of chunks. */
class ByteReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  /** Bytes handed out so far: the archive offset of the next byte. */
  offset = 0;
  private readonly source: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.source = source[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.source.next();
    if (next.done === true) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return true;
  }

  /** Up to `max` bytes (at least one), or undefined at the end. */
  async some(max: number): Promise<Buffer | undefined> {
    while (this.buffered === 0) if (!(await this.more())) return undefined;
    const first = this.chunks[0]!;
    const take = Math.min(max, first.length);
    const out = first.subarray(0, take);
    if (take === first.length) this.chunks.shift();
    else this.chunks[0] = first.subarray(take);
    this.buffered -= take;
    this.offset += take;
    return out;
  }

  /** Exactly `length` bytes; undefined when the stream ends first (`partial` tells whether any were read). */
  async exact(length: number): Promise<{ data?: Buffer; partial: boolean }> {
    while (this.buffered < length) if (!(await this.more())) break;
    if (this.buffered < length) return { partial: this.buffered > 0 };
    const parts: Buffer[] = [];
    let missing = length;
    while (missing > 0) {
      const part = (await this.some(missing))!;
      parts.push(part);
      missing -= part.length;
    }
    return { data: parts.length === 1 ? parts[0]! : Buffer.concat(parts), partial: false };
  }

  async skip(length: number): Promise<void> {
    let missing = length;
    while (missing > 0) {
      const part = await this.some(missing);
      if (part === undefined) throw new TarProblem("the archive ends in the middle of an entry");
      missing -= part.length;
    }
  }

  /** Reads everything left; returns whether any of it was not a zero byte. */
  async drain(): Promise<boolean> {
    let nonZero = false;
    for (;;) {
      const part = await this.some(1 << 20);
      if (part === undefined) return nonZero;
      if (!nonZero && part.some((byte) => byte !== 0)) nonZero = true;
    }
  }
}

function paxNumber(value: string | undefined, what: string, at: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value)))
    throw new TarProblem(`the pax ${what} of the entry at byte ${at} is not a number`);
  return Number(value);
}

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

/** What extended headers (a pax `x` record set, GNU `L`/`K` long names) said about the entry that follows them. */
interface Pending {
  pax?: Map<string, string>;
  longName?: string;
  longLink?: string;
}

const isEmpty = (pending: Pending): boolean =>
  pending.pax === undefined && pending.longName === undefined && pending.longLink === undefined;

/** A header block, its checksum and magic checked. */
interface Header {
  /** The archive offset of the block. */
  at: number;
  block: Buffer;
  /** POSIX ustar (its name prefix counts), not the old GNU format. */
  ustar: boolean;
  /** The type flag. */
  flag: string;
  /** The header's size field (a pax size may override it). */
  size: number;
}

const EXTENDED_FLAGS = new Set(["x", "L", "K"]);

/**
 * Reads `source` (an uncompressed tar stream) entry by entry. Throws TarProblem for what the factory never
 * writes and GNU tar would honour, and for malformed or truncated archives. `drain()` reads what is left.
 */
export class TarReader {
  private readonly bytes: ByteReader;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.bytes = new ByteReader(source);
  }

  /** Reads the rest of the stream (after a TarProblem, so that the whole file is still hashed). */
  async drain(): Promise<void> {
    await this.bytes.drain();
  }

  async *entries(): AsyncGenerator<TarEntry> {
    let pending: Pending = {};
    for (;;) {
      const header = await this.header(pending);
      if (header === undefined) return;
      if (EXTENDED_FLAGS.has(header.flag)) {
        pending = await this.extended(header, pending);
        continue;
      }
      const entry = describeEntry(header, pending);
      pending = {};
      const isFile = entry.type === "file" || entry.type === "contiguous-file";
      const stream = fileBody(this.bytes, entry.name, isFile ? entry.size : 0);
      yield { ...entry, body: stream.body };
      await this.bytes.skip(stream.finish() + (isFile ? padding(entry.size) : 0));
    }
  }

  /** The next header, checked; undefined at the end of the archive (after checking that nothing follows it). */
  private async header(pending: Pending): Promise<Header | undefined> {
    const at = this.bytes.offset;
    const { data: block, partial } = await this.bytes.exact(BLOCK);
    if (block === undefined) {
      if (partial) throw new TarProblem(`the archive ends in the middle of the header at byte ${at}`);
      if (!isEmpty(pending)) throw new TarProblem("the archive ends after an extended header, before its entry");
      return undefined;
    }
    if (isZeroBlock(block)) {
      if (!isEmpty(pending)) throw new TarProblem(`the end-of-archive block at byte ${at} follows an extended header`);
      if (await this.bytes.drain()) {
        throw new TarProblem(
          `there is data after the end-of-archive block at byte ${at} (tar --ignore-zeros would extract it)`,
        );
      }
      return undefined;
    }
    if (!checksumOk(block, at)) throw new TarProblem(`the header at byte ${at} has a wrong checksum`);
    const magic = block.subarray(257, 265).toString("latin1");
    const ustar = magic.startsWith("ustar\0");
    if (!ustar && magic !== "ustar  \0")
      throw new TarProblem(`the header at byte ${at} is neither POSIX ustar nor GNU tar`);
    return { at, block, ustar, flag: String.fromCharCode(block[156]!), size: number(block, 124, 12, "size", at) };
  }

  /** Reads an extended header (pax `x`, GNU `L` or `K`) and adds what it says to what is pending. */
  private async extended(header: Header, pending: Pending): Promise<Pending> {
    const { at, flag, size } = header;
    if (size > MAX_EXTENDED_BYTES)
      throw new TarProblem(`the extended header at byte ${at} is larger than ${MAX_EXTENDED_BYTES} bytes`);
    const { data } = await this.bytes.exact(size);
    if (data === undefined) throw new TarProblem(`the archive ends in the middle of the extended header at byte ${at}`);
    await this.bytes.skip(padding(size));
    if (flag === "x") {
      if (pending.pax !== undefined) throw new TarProblem(`two pax headers in a row at byte ${at}`);
      return { ...pending, pax: paxRecords(data, at) };
    }
    const name = gnuLongName(data, at);
    if (flag === "L") {
      if (pending.longName !== undefined) throw new TarProblem(`two GNU long names in a row at byte ${at}`);
      return { ...pending, longName: name };
    }
    if (pending.longLink !== undefined) throw new TarProblem(`two GNU long link names in a row at byte ${at}`);
    return { ...pending, longLink: name };
  }
}

/** The name a GNU `L`/`K` entry holds: up to its NUL, with nothing but NULs after it. */
function gnuLongName(data: Buffer, at: number): string {
  const end = data.indexOf(0);
  const value = end === -1 ? data : data.subarray(0, end);
  if (end !== -1 && data.subarray(end).some((byte) => byte !== 0)) {
    throw new TarProblem(`the GNU long name at byte ${at} has bytes after its NUL (GNU tar would cut the name there)`);
  }
  return text(value, "the GNU long name", at);
}

/** The type of an entry; refuses the types GNU tar gives a meaning the factory never writes, and unknown ones. */
function entryType(flag: string, at: number): TarEntryType {
  const special = SPECIAL.get(flag);
  if (special !== undefined) throw new TarProblem(`the entry at byte ${at} is ${special}`);
  const type = TYPES.get(flag);
  if (type === undefined) {
    throw new TarProblem(
      `the entry at byte ${at} has the unknown type ${JSON.stringify(flag)} (GNU tar would extract it as a regular file)`,
    );
  }
  return type;
}

/** An entry as GNU tar would extract it: its header with what the extended headers before it said. */
function describeEntry(header: Header, pending: Pending): Omit<TarEntry, "body"> {
  const { at, block } = header;
  const type = entryType(header.flag, at);
  const { name, linkname, size } = entryNames(header, pending);
  const isFile = type === "file" || type === "contiguous-file";
  if (isFile && name.endsWith("/")) {
    throw new TarProblem(
      `${JSON.stringify(name)}: a regular file whose name ends in '/' (GNU tar would make it a directory)`,
    );
  }
  if (!isFile && size !== 0) {
    throw new TarProblem(
      `${JSON.stringify(name)}: a ${type} entry with ${size} bytes of data (GNU tar would read that data as headers)`,
    );
  }
  const mode = number(block, 100, 8, "mode", at) & 0o7777;
  const pax = pending.pax;
  return {
    name,
    type,
    mode,
    size,
    linkname,
    uid: paxNumber(pax?.get("uid"), "uid", at) ?? number(block, 108, 8, "uid", at),
    gid: paxNumber(pax?.get("gid"), "gid", at) ?? number(block, 116, 8, "gid", at),
    uname: pax?.get("uname") ?? text(field(block, 265, 32), "the owner name", at),
    gname: pax?.get("gname") ?? text(field(block, 297, 32), "the group name", at),
  };
}

/** Name, link name and size: a pax record over a GNU long name over the header (never both extended kinds). */
function entryNames(header: Header, pending: Pending): { name: string; linkname: string; size: number } {
  const { at, block } = header;
  const { pax, longName, longLink } = pending;
  let name = text(field(block, 0, 100), "the name", at);
  const prefix = field(block, 345, 155);
  if (header.ustar && prefix.length > 0) name = `${text(prefix, "the name prefix", at)}/${name}`;
  const linkname = text(field(block, 157, 100), "the link name", at);
  if (longName !== undefined && pax?.has("path") === true)
    throw new TarProblem(`the entry at byte ${at} has both a GNU long name and a pax path`);
  if (longLink !== undefined && pax?.has("linkpath") === true)
    throw new TarProblem(`the entry at byte ${at} has both a GNU long link name and a pax linkpath`);
  return {
    name: pax?.get("path") ?? longName ?? name,
    linkname: pax?.get("linkpath") ?? longLink ?? linkname,
    size: paxNumber(pax?.get("size"), "size", at) ?? header.size,
  };
}

/**
 * The body of an entry as it streams: `size` bytes read on demand. `finish()` says how many were left unread (for
 * the reader to skip) and ends the body: read after the next entry is asked for, it yields nothing.
 */
function fileBody(bytes: ByteReader, name: string, size: number): { body: AsyncIterable<Buffer>; finish(): number } {
  let left = size;
  return {
    body: {
      async *[Symbol.asyncIterator]() {
        while (left > 0) {
          const part = await bytes.some(left);
          if (part === undefined) throw new TarProblem(`the archive ends in the middle of ${JSON.stringify(name)}`);
          left -= part.length;
          yield part;
        }
      },
    },
    finish() {
      const unread = left;
      left = 0;
      return unread;
    },
  };
}
