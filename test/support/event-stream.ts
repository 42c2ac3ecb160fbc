// A client of a server-sent event stream for tests: reads `event:`/`data:` frames as they come and
// lets a test wait for the next event, or for the first event whose data satisfies a check. Built on
// node:http rather than fetch: undici opens a fresh connection to the origin when a streamed response
// is aborted, one that never sends a request, and a server's close waits for such a connection until
// its headers timeout (a minute).
import { get, type IncomingMessage } from 'node:http';

export interface ServerEvent {
  event: string;
  data: string;
}

export class EventStreamClient {
  readonly events: ServerEvent[] = [];
  /** Resolves when the stream ends: the server ended it, the client closed it, or it broke (`failure`). */
  readonly ended: Promise<void>;
  /** Why the stream broke, if it did not end cleanly (a client's own close is clean). */
  failure: Error | undefined;
  private read = 0;
  private wake: (() => void) | undefined;
  private done = false;
  private closedByClient = false;

  private constructor(readonly response: IncomingMessage) {
    this.ended = this.pump().finally(() => {
      this.done = true;
      this.wake?.();
    });
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<EventStreamClient> {
    const response = await new Promise<IncomingMessage>((resolve, reject) =>
      get(url, { headers: { accept: 'text/event-stream', ...headers } }, resolve).once('error', reject),
    );
    if (response.statusCode !== 200) {
      response.destroy();
      throw new Error(`event stream ${url}: ${response.statusCode}`);
    }
    return new EventStreamClient(response);
  }

  /** The next event not yet taken (of any name), or an error after `timeoutMs` or at the stream's end. */
  async next(timeoutMs = 10_000): Promise<ServerEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const event = this.events[this.read];
      if (event) {
        this.read++;
        return event;
      }
      if (this.done) throw new Error('the event stream ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no event within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Takes events until one named `name` whose JSON data satisfies `check`; resolves to that data. */
  async until<T>(name: string, check: (data: T) => boolean, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: string | undefined;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching "${name}" event within ${timeoutMs} ms; last: ${last}`);
      const event = await this.next(left);
      if (event.event !== name) continue;
      last = event.data.slice(0, 2000);
      const data = JSON.parse(event.data) as T;
      if (check(data)) return data;
    }
  }

  close(): void {
    this.closedByClient = true;
    this.response.destroy();
  }

  private async pump(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of this.response as AsyncIterable<Buffer>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of frame.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length > 0) this.events.push({ event, data: data.join('\n') });
        }
        this.wake?.();
      }
    } catch (error) {
      if (!this.closedByClient) this.failure = error as Error;
    }
    // A connection cut before the server ended the response is no clean end either.
    if (!this.closedByClient && !this.response.complete) this.failure ??= new Error('the stream was cut');
  }
}
