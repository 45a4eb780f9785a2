import { PassThrough } from "node:stream";
import type Docker from "dockerode";

export type ChunkSink = (chunk: Buffer) => void;

export interface OutputSinks {
  onStdout?: ChunkSink | undefined;
  onStderr?: ChunkSink | undefined;
}

/**
 * Splits a multiplexed (Tty: false) attach or exec stream into stdout and stderr chunks.
 * Resolves once the stream has ended and every chunk was delivered; rejects on a stream error
 * or when a sink throws.
 */
export function demuxOutput(modem: Docker["modem"], stream: NodeJS.ReadableStream, sinks: OutputSinks): Promise<void> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  return new Promise<void>((resolve, reject) => {
    let failure: unknown;
    let open = 2;
    const deliver = (sink: ChunkSink | undefined) => (chunk: Buffer) => {
      if (!sink || failure !== undefined) return;
      try {
        sink(chunk);
      } catch (error) {
        failure = error;
      }
    };
    const ended = () => {
      if (--open > 0) return;
      if (failure !== undefined) reject(failure);
      else resolve();
    };
    stdout.on("data", deliver(sinks.onStdout)).on("end", ended);
    stderr.on("data", deliver(sinks.onStderr)).on("end", ended);
    const finish = () => {
      stdout.end();
      stderr.end();
    };
    stream.on("end", finish);
    stream.on("close", finish);
    stream.on("error", (error: unknown) => {
      failure ??= error;
      finish();
    });
    modem.demuxStream(stream, stdout, stderr);
  });
}
