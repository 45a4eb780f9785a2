/**
 * HTTP over few ssh connections to an engine's host: every request gets its own `docker system dial-stdio` channel
 * on an ssh session that is already logged in. dockerode's own ssh transport opens a new ssh connection (key
 * exchange, login) for every API call, and a build makes hundreds of them.
 *
 * OpenSSH lets one connection carry at most MaxSessions (default 10) channels at once, and concurrent builds keep
 * several open (an exec's output stream, the inspections around it): a session carries up to CHANNELS_PER_SESSION,
 * and another one is opened when all are full. A session that drops is forgotten; the next request opens another.
 *
 * A session's TCP socket keeps this process alive only while a request uses it, so idle sessions never hold a
 * finished command back from exiting.
 */
import http from "node:http";
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Client, type ConnectConfig } from "ssh2";

/** Below OpenSSH's default MaxSessions (10). */
export const CHANNELS_PER_SESSION = 8;

export interface SshAgent extends http.Agent {
  /** Ends every ssh session (requests after it open new ones). */
  close(): void;
}

interface Session {
  ready: Promise<Client>;
  sock: Socket;
  /** Requests waiting for a channel of this session or using one. */
  busy: number;
  gone: boolean;
}

export function sshHttpAgent(config: ConnectConfig & { host: string; port: number }): SshAgent {
  const sessions: Session[] = [];
  const open = (): Session => {
    const sock = new Socket();
    const client = new Client();
    const session: Session = { sock, busy: 0, gone: false, ready: Promise.resolve(client) };
    const forget = () => {
      session.gone = true;
      const at = sessions.indexOf(session);
      if (at >= 0) sessions.splice(at, 1);
    };
    session.ready = new Promise<Client>((resolve, reject) => {
      client.once("ready", () => resolve(client));
      // `on`, not `once`: ssh2 may emit several errors for one failure (a protocol error, then the socket's),
      // and an 'error' event without a listener ends the process with a stack trace.
      client.on("error", (error) => {
        forget();
        sock.destroy();
        reject(error);
      });
      client.once("close", () => {
        forget();
        sock.destroy();
        reject(new Error("the ssh connection closed before it was ready"));
      });
    });
    sock.on("error", () => {}); // reported through the client's 'error'
    client.on("end", () => sock.destroy());
    session.ready.catch(() => {});
    sock.connect(config.port, config.host);
    client.connect({ ...config, sock });
    sessions.push(session);
    return session;
  };
  const take = (): Session => {
    const session = sessions.find((s) => !s.gone && s.busy < CHANNELS_PER_SESSION) ?? open();
    if (session.busy++ === 0) session.sock.ref();
    return session;
  };
  const give = (session: Session): void => {
    if (--session.busy === 0) session.sock.unref();
  };

  const agent = new http.Agent({ keepAlive: false }) as SshAgent;
  (agent as unknown as { createConnection: unknown }).createConnection = (
    _options: unknown,
    callback: (error: Error | null, stream?: Duplex) => void,
  ) => {
    const session = take();
    session.ready.then(
      (client) => {
        client.exec("docker system dial-stdio", (error, channel) => {
          if (error) {
            give(session);
            callback(error);
            return;
          }
          channel.once("close", () => give(session));
          callback(null, channel as unknown as Duplex);
        });
      },
      (error: Error) => {
        give(session);
        callback(error);
      },
    );
    return undefined;
  };
  agent.close = () => {
    for (const s of sessions.splice(0)) {
      s.gone = true;
      s.sock.destroy();
      void s.ready.then((client) => client.end()).catch(() => {});
    }
  };
  return agent;
}
