import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { StringDecoder } from "node:string_decoder";

/**
 * The full output of one target's build, written to a file as it arrives, split into lines for the reporter,
 * with the last lines kept for error messages.
 */
export class TargetLog {
  private readonly file: WriteStream;
  private readonly tail: string[] = [];
  private partial = "";
  /** Keeps a multi-byte UTF-8 character that a chunk boundary splits until its last byte arrives. */
  private readonly decoder = new StringDecoder("utf8");

  private constructor(
    readonly path: string,
    file: WriteStream,
    private readonly onLine: (line: string) => void,
    private readonly keep: number,
  ) {
    this.file = file;
  }

  /** The first write error of the log file (a full disk, say); the build goes on without its file log. */
  failure: Error | undefined;

  static async open(path: string, onLine: (line: string) => void, keep = 20): Promise<TargetLog> {
    await mkdir(dirname(path), { recursive: true });
    const log = new TargetLog(path, createWriteStream(path, { flags: "a" }), onLine, keep);
    log.file.on("error", (error: NodeJS.ErrnoException) => {
      if (log.failure !== undefined) return;
      log.failure = error;
      // Said once, where the build's output is shown: which file could not be written, and why.
      const reason = error.code === "ENOSPC" ? "no space left on the device (ENOSPC)" : error.message;
      log.push(
        `==> [stack-factory] cannot write the log ${path}: ${reason}; the build goes on, its output is no longer logged to the file`,
      );
    });
    return log;
  }

  /** A line of the factory's own (step headers), marked so it stands out in the log. */
  note(text: string): void {
    this.write(`==> [stack-factory] ${text}\n`);
  }

  write(chunk: Buffer | string): void {
    // Bytes go to the file as they came; only the lines for the reporter and the tail are decoded.
    if (this.failure === undefined && !this.file.destroyed) this.file.write(chunk);
    this.split(this.decoder.write(typeof chunk === "string" ? Buffer.from(chunk) : chunk));
  }

  private split(text: string): void {
    const lines = (this.partial + text).split(/\r?\n/);
    this.partial = lines.pop() ?? "";
    for (const line of lines) this.push(line);
  }

  private push(line: string): void {
    this.tail.push(line);
    if (this.tail.length > this.keep) this.tail.shift();
    if (line.trim() !== "") this.onLine(line);
  }

  lastLines(): string[] {
    return this.partial === "" ? [...this.tail] : [...this.tail, this.partial].slice(-this.keep);
  }

  async close(): Promise<void> {
    const rest = this.decoder.end();
    if (rest !== "") this.split(rest);
    if (this.partial !== "") {
      this.push(this.partial);
      this.partial = "";
    }
    if (this.file.destroyed) return;
    await new Promise<void>((resolve) => {
      this.file.once("error", () => resolve());
      this.file.end(resolve);
    });
  }
}
