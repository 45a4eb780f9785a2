import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/** The sha256 (hex) of a file's content, read in 1 MiB chunks. */
export async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
