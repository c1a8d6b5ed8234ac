/**
 * The bench client's retries: a request whose connection fails, or that the HTTP server timed out
 * before taking it whole (408), is sent again (under the same idempotency key, by its caller); any
 * other answer is the answer.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { retried } from './node.ts';

function sender(outcomes: Array<number | Error>) {
  let calls = 0;
  const send = async (): Promise<Response> => {
    const next = outcomes[Math.min(calls, outcomes.length - 1)];
    calls++;
    if (next instanceof Error) throw next;
    return new Response(next === 408 ? null : `{"status":${next}}`, { status: next ?? 500 });
  };
  return { send, calls: () => calls };
}

describe('the bench client sends again', () => {
  test('after a 408 or a failed connection, and answers the first other answer', async () => {
    const timedOut = sender([408, 200]);
    assert.equal((await retried(timedOut.send)).status, 200);
    assert.equal(timedOut.calls(), 2);
    const dropped = sender([new Error('ECONNRESET'), 201]);
    assert.equal((await retried(dropped.send)).status, 201);
    assert.equal(dropped.calls(), 2);
  });

  test('not after a refusal of the node, and at most three times', async () => {
    const refused = sender([409, 200]);
    assert.equal((await retried(refused.send)).status, 409);
    assert.equal(refused.calls(), 1);
    const always = sender([408]);
    assert.equal((await retried(always.send)).status, 408);
    assert.equal(always.calls(), 3);
    const down = sender([new Error('ECONNREFUSED')]);
    await assert.rejects(retried(down.send), /ECONNREFUSED/);
    assert.equal(down.calls(), 3);
  });
});
