/**
 * HTTP over one ssh connection to an engine's host: every request gets its own `docker system dial-stdio` channel
 * on a single ssh session, made on the first request and made again if it drops. dockerode's own ssh transport
 * opens a new ssh connection (key exchange, login) for every API call, and a build makes hundreds of them.
 *
 * The TCP socket under the session keeps this process alive only while a channel is open, so an idle connection
 * never holds a finished command back from exiting.
 */
import http from "node:http";
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Client, type ConnectConfig } from "ssh2";

export interface SshAgent extends http.Agent {
  /** Ends the ssh session (requests after it open a new one). */
  close(): void;
}

export function sshHttpAgent(config: ConnectConfig & { host: string; port: number }): SshAgent {
  let session: Promise<{ client: Client; sock: Socket }> | undefined;
  let sock: Socket | undefined;
  // Requests waiting for a channel or using one: while there are any, the socket holds the process.
  let busy = 0;
  const hold = () => {
    if (busy++ === 0) sock?.ref();
  };
  const release = () => {
    if (--busy === 0) sock?.unref();
  };
  const connect = (): Promise<{ client: Client; sock: Socket }> => {
    session ??= new Promise((resolve, reject) => {
      const socket = new Socket();
      sock = socket;
      if (busy === 0) socket.unref();
      const client = new Client();
      const forget = () => {
        session = undefined;
      };
      client.once("ready", () => resolve({ client, sock: socket }));
      client.once("error", (error) => {
        forget();
        reject(error);
      });
      client.once("close", forget);
      socket.connect(config.port, config.host);
      client.connect({ ...config, sock: socket });
    });
    return session;
  };
  const agent = new http.Agent({ keepAlive: false }) as SshAgent;
  (agent as unknown as { createConnection: unknown }).createConnection = (
    _options: unknown,
    callback: (error: Error | null, stream?: Duplex) => void,
  ) => {
    hold();
    connect().then(
      ({ client }) => {
        client.exec("docker system dial-stdio", (error, channel) => {
          if (error) {
            release();
            callback(error);
            return;
          }
          channel.once("close", release);
          callback(null, channel as unknown as Duplex);
        });
      },
      (error: Error) => {
        release();
        callback(error);
      },
    );
    return undefined;
  };
  agent.close = () => {
    void session?.then(({ client }) => client.end()).catch(() => {});
    session = undefined;
  };
  return agent;
}
