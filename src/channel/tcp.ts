/**
 * TCP transport (Node only): byte streams over `node:net`, for devices on a network or two
 * processes on one machine. Everything above (framing, session, links, faults) is the same as over
 * the in-memory pair.
 */
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { isTallyError, TallyError } from '../core/errors.ts';
import { timeoutError } from './inbox.ts';
import { CLOSED_BY_PEER, CLOSED_HERE, linkClosed, ReceiverSlot, sendOnClosed, type ByteStream, type DuplexReceiver } from './stream.ts';

/** How long `connectTcp` waits for the connection by default. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** How long `accept` waits for a connection by default. */
export const ACCEPT_TIMEOUT_MS = 30_000;
/** Most accepted connections waiting to be taken; more are refused (closed at once). */
export const ACCEPT_QUEUE_MAX = 16;
/** How long an orderly close waits for the peer to close its side before dropping the socket. */
export const CLOSE_GRACE_MS = 2_000;

/** A byte stream over one TCP socket. */
class TcpStream implements ByteStream {
  readonly unit = 'bytes' as const;
  private readonly slot = new ReceiverSlot();
  private error: TallyError | undefined;
  private grace: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly socket: Socket,
    readonly remote: string,
  ) {
    socket.setNoDelay(true);
    socket.on('error', (e) => this.ended(linkClosed(`connection to ${remote} failed: ${e.message}`, e)));
    socket.on('close', () => {
      clearTimeout(this.grace);
      this.ended(linkClosed(`connection to ${remote} closed`));
    });
  }

  send(bytes: Uint8Array): void {
    if (this.error !== undefined) throw sendOnClosed(this.error);
    this.socket.write(bytes);
  }

  attach(receiver: DuplexReceiver): void {
    this.slot.attach(receiver);
    // Data listeners only now: until a receiver is attached the socket stays paused and the
    // kernel, not this process, holds what the peer sends.
    this.socket.on('data', (chunk: Uint8Array) => {
      if (this.error === undefined) this.slot.deliver(new Uint8Array(chunk));
    });
    this.socket.on('end', () => this.ended(linkClosed(CLOSED_BY_PEER)));
  }

  close(error?: TallyError): void {
    if (this.error !== undefined) return;
    this.error = error ?? linkClosed(CLOSED_HERE);
    if (error === undefined) {
      // end() sends what is buffered, then FIN; a peer that never closes its side is dropped later.
      this.socket.end();
      this.grace = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
      this.grace.unref();
    } else {
      this.socket.destroy();
    }
    this.slot.end(this.error);
  }

  get closeError(): TallyError | undefined {
    return this.error;
  }

  private ended(error: TallyError): void {
    if (this.error !== undefined) return;
    this.error = error;
    this.socket.destroy();
    this.slot.end(error);
  }
}

/** Options of `accept`. */
export interface AcceptOptions {
  /** How long to wait (default ACCEPT_TIMEOUT_MS); Infinity waits until the server closes. */
  timeoutMs?: number | undefined;
}

/** A listening TCP server: accepted connections queue until taken. */
export interface TcpServer {
  readonly host: string;
  /** The port listened on (the one the system chose when asked for port 0). */
  readonly port: number;
  /**
   * The next accepted connection.
   * @throws TallyError TIMEOUT when none comes in time; LINK_CLOSED once the server is closed
   */
  accept(options?: AcceptOptions): Promise<ByteStream>;
  /** Every accepted connection, waiting without limit, until the server closes. */
  [Symbol.asyncIterator](): AsyncIterator<ByteStream>;
  /** Stops listening and drops connections not yet taken; taken ones stay open. */
  close(): Promise<void>;
}

interface AcceptWaiter {
  resolve(stream: ByteStream): void;
  reject(error: TallyError): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

class Listener implements TcpServer {
  private readonly queue: TcpStream[] = [];
  private readonly waiters: AcceptWaiter[] = [];
  private closedError: TallyError | undefined;

  constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {
    server.on('connection', (socket) => this.connection(socket));
  }

  accept(options?: AcceptOptions): Promise<ByteStream> {
    const ready = this.queue.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    const timeoutMs = options?.timeoutMs ?? ACCEPT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const waiter: AcceptWaiter = { resolve, reject, timer: undefined };
      if (Number.isFinite(timeoutMs)) {
        waiter.timer = setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(timeoutError(`a connection on ${this.host}:${this.port}`, timeoutMs));
        }, timeoutMs);
      }
      this.waiters.push(waiter);
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ByteStream> {
    for (;;) {
      try {
        yield await this.accept({ timeoutMs: Infinity });
      } catch (e) {
        if (this.closedError !== undefined) return;
        throw e;
      }
    }
  }

  close(): Promise<void> {
    if (this.closedError === undefined) {
      this.closedError = linkClosed(`server on ${this.host}:${this.port} closed`);
      for (const waiter of this.waiters.splice(0)) {
        clearTimeout(waiter.timer);
        waiter.reject(this.closedError);
      }
      for (const stream of this.queue.splice(0)) stream.close(this.closedError);
      // server.close's callback waits for every connection to end, taken ones included: do not wait for it.
      this.server.close(() => {});
    }
    return Promise.resolve();
  }

  private connection(socket: Socket): void {
    const stream = new TcpStream(socket, `${socket.remoteAddress}:${socket.remotePort}`);
    if (this.closedError !== undefined) return stream.close(this.closedError);
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      clearTimeout(waiter.timer);
      waiter.resolve(stream);
    } else if (this.queue.length >= ACCEPT_QUEUE_MAX) {
      stream.close(linkClosed(`server on ${this.host}:${this.port} has ${ACCEPT_QUEUE_MAX} connections waiting; refused another`));
    } else {
      this.queue.push(stream);
    }
  }
}

/**
 * Listens on `host:port` (port 0: any free port, see `server.port`).
 * @throws TallyError LINK_CLOSED when the address cannot be listened on
 */
export function listenTcp(port: number, host: string): Promise<TcpServer> {
  return new Promise((resolve, reject) => {
    const server = createServer({ noDelay: true });
    server.once('error', (e) => reject(linkClosed(`cannot listen on ${host}:${port}: ${e.message}`, e)));
    server.listen(port, host, () => {
      server.removeAllListeners('error');
      // Later errors (a failing accept) must not crash the process; connections report their own.
      server.on('error', () => {});
      resolve(new Listener(server, host, (server.address() as AddressInfo).port));
    });
  });
}

/** Options of `connectTcp`. */
export interface ConnectOptions {
  /** How long to wait for the connection, retries included (default CONNECT_TIMEOUT_MS). */
  timeoutMs?: number | undefined;
  /**
   * Retry a refused connection (nobody listens yet: the peer may be starting) with a short backoff
   * until `timeoutMs` has passed; the last refusal is then reported. Default: fail at once.
   */
  retryRefused?: boolean | undefined;
}

/** First wait before a refused connection is tried again; each retry doubles it. */
export const CONNECT_RETRY_DELAY_MS_MIN = 50;
/** Longest wait between two tries of a refused connection. */
export const CONNECT_RETRY_DELAY_MS_MAX = 500;

/**
 * Connects to `host:port`.
 * @throws TallyError TIMEOUT when the connection is not made in time; LINK_CLOSED when it is
 * refused (with `retryRefused`: still refused when the time is up) or fails
 */
export async function connectTcp(host: string, port: number, options?: ConnectOptions): Promise<ByteStream> {
  const timeoutMs = options?.timeoutMs ?? CONNECT_TIMEOUT_MS;
  const started = Date.now();
  let delayMs = CONNECT_RETRY_DELAY_MS_MIN;
  for (let attempt = 1; ; attempt++) {
    const leftMs = Math.max(1, timeoutMs - (Date.now() - started));
    try {
      return await connectOnce(host, port, leftMs, timeoutMs);
    } catch (e) {
      const refused = isTallyError(e, 'LINK_CLOSED') && errnoOf(e.cause) === 'ECONNREFUSED';
      if (options?.retryRefused !== true || !refused) throw e;
      if (Date.now() - started + delayMs >= timeoutMs) {
        throw linkClosed(`cannot connect to ${host}:${port}: nobody listened there in ${timeoutMs} ms (${attempt} tries, the last ECONNREFUSED)`, e.cause);
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, CONNECT_RETRY_DELAY_MS_MAX);
    }
  }
}

function errnoOf(e: unknown): string | undefined {
  return e instanceof Error && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

function connectOnce(host: string, port: number, waitMs: number, timeoutMs: number): Promise<ByteStream> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(timeoutError(`a TCP connection to ${host}:${port}`, timeoutMs));
    }, waitMs);
    const failed = (e: Error) => {
      clearTimeout(timer);
      reject(linkClosed(`cannot connect to ${host}:${port}: ${e.message}`, e));
    };
    socket.once('error', failed);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', failed);
      resolve(new TcpStream(socket, `${host}:${port}`));
    });
  });
}
