declare module 'bittorrent-tracker' {
  import type { Socket } from 'node:dgram';
  import type { EventEmitter } from 'node:events';
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export class Server extends EventEmitter {
    constructor(options?: Record<string, unknown>);
    udp4: Socket | null;
    udp6: Socket | null;
    // biome-ignore lint/suspicious/noExplicitAny: bittorrent-tracker's swarm interface is untyped.
    getSwarm(infoHash: string | Uint8Array, callback: (error: Error | null, swarm?: any) => void): void;
    onHttpRequest(
      request: IncomingMessage,
      response: ServerResponse,
      options?: Record<string, unknown>,
    ): void;
    close(callback?: () => void): void;
  }
}
