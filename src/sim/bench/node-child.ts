/**
 * The child side of a bench node process (node-process.ts): told which schemes to serve (by their
 * registry names), it opens the node and serves it on loopback, answers its CPU time when asked,
 * and stops the node when told to or when its parent goes away.
 */
import { SCHEMES } from '../../schemes/index.ts';
import { childMessageCodec, encodeReady, parentMessageCodec, type ChildMessage, type ParentMessage } from './node-process.ts';
import { serveBenchNode, type BenchNodeServed } from './node.ts';

/** Sends a message to the parent; resolves once it is written (so that leaving after it does not lose it). */
function answer(message: ChildMessage): Promise<void> {
  // Checked on the way out as on the way in: a wrong message is a bug here, not in the parent.
  const checked = childMessageCodec.decode(message, 'answer');
  return new Promise((done) => {
    if (process.send === undefined || !process.connected) return done();
    process.send(checked, undefined, undefined, () => done());
  });
}

async function open(request: Extract<ParentMessage, { kind: 'open' }>): Promise<BenchNodeServed> {
  const schemes = await Promise.all(
    request.schemes.map(async (name) => {
      const scheme = SCHEMES.find((s) => s.name === name);
      if (scheme === undefined) throw new RangeError(`no scheme ${JSON.stringify(name)} in the registry (${SCHEMES.map((s) => s.name).join(', ')})`);
      return scheme.node();
    }),
  );
  const limits = { holdingLimitMinor: BigInt(request.holdingLimitMinor), offlinePaymentsMax: request.offlinePaymentsMax };
  const settle = request.natsUrl === undefined ? undefined : { natsUrl: request.natsUrl, shards: request.shards ?? 1, shardDatabases: request.shardDatabases };
  return serveBenchNode({ schemes, database: request.database, deviceLimits: () => limits, suite: request.suite, postgresUrl: request.postgresUrl, settle, pgliteCluster: request.pgliteCluster });
}

let served: Promise<BenchNodeServed> | undefined;
let stopping: Promise<void> | undefined;

/** Stops the node (once) and leaves. */
function stop(thenAnswer: boolean): Promise<void> {
  stopping ??= (async () => {
    try {
      await (await served)?.stop();
    } catch (e) {
      if (thenAnswer) await answer({ kind: 'failed', message: `stop: ${e instanceof Error ? e.message : String(e)}`.slice(0, 4000) });
    }
    if (thenAnswer) await answer({ kind: 'stopped' });
    process.disconnect?.();
    process.exit(0);
  })();
  return stopping;
}

process.on('message', (raw: unknown) => {
  let message: ParentMessage;
  try {
    message = parentMessageCodec.decode(raw, 'message');
  } catch (e) {
    void answer({ kind: 'failed', message: (e instanceof Error ? e.message : String(e)).slice(0, 4000) });
    return;
  }
  switch (message.kind) {
    case 'open': {
      if (served !== undefined) {
        void answer({ kind: 'failed', message: 'the node is already open' });
        return;
      }
      served = open(message);
      served.then(
        (s) => void answer(encodeReady(s)),
        (e: unknown) => void answer({ kind: 'failed', message: (e instanceof Error ? e.message : String(e)).slice(0, 4000) }),
      );
      return;
    }
    case 'cpu': {
      const used = process.cpuUsage();
      void answer({ kind: 'cpu', id: message.id, microseconds: used.user + used.system });
      return;
    }
    case 'stop':
      void stop(true);
      return;
  }
});

// The parent went away without stopping us: do not leave a node (and a PostgreSQL schema) behind.
process.on('disconnect', () => void stop(false));
