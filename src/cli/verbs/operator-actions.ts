/**
 * `tally operator revoke`, `tally operator settle` and `tally operator remove-oem`: one request to
 * the node's operator routes each, printing the node's answer.
 */
import { toHex } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import { JSON_OPTION, nodeUrl, OPERATOR_FLAGS, OPERATOR_OPTIONS, operatorToken, parse, type Verb } from '../plugin.ts';

/** An operator verb that POSTs one request built from its words. */
function operatorAction(name: string, words: readonly string[], summary: string, request: (args: string[]) => { path: string; body: Record<string, string> }): Verb {
  return {
    usage: `tally operator ${name} ${words.join(' ')} [--node URL] [--token T | --data DIR] [--json]`,
    summary,
    options: [...OPERATOR_OPTIONS, JSON_OPTION],
    example: `tally operator ${name} ${words.map((w) => (w === 'KEYID' ? '<64 hex digits>' : "'reported stolen'")).join(' ')} --data ./tally-data`,
    async run(argv, io) {
      const { values, args } = parse(argv, OPERATOR_FLAGS, [...words]);
      const { path, body } = request(args);
      const { NodeClient } = await import('../../wallet/node-client.ts');
      const answer = await new NodeClient(nodeUrl(values.node, io.env)).operator(await operatorToken(values, io.env), 'POST', path, {
        body,
        idempotencyKey: `${name}-${toHex(crypto.getRandomValues(new Uint8Array(12)))}`,
      });
      // The whole answer as the node gave it (a codec with no fields would keep none of them).
      const got = answer.body;
      if (typeof got !== 'object' || got === null || Array.isArray(got)) throw new TallyError('DECODE_FAILED', `the node answered ${path} with something that is not a JSON object`, { path, expected: 'a JSON object', got: typeof got });
      const fields = got as Record<string, unknown>;
      return { text: Object.entries(fields).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n'), json: fields };
    },
  };
}

/** Revokes a user's, a device's or a scheme's own key's certificate (`POST /v1/operator/revoke`). */
export const operatorRevoke = operatorAction('revoke', ['KEYID', 'REASON'], "Operator: revokes the certificate of a user or a device by key id (a scheme may revoke more for a key it registered, such as a wallet's two certificates), and signs the next revocation list.", ([keyId = '', reason = '']) => ({ path: '/v1/operator/revoke', body: { keyId, reason } }));
/** Settles a revoked device's honest remainder (`POST /v1/operator/settle`). */
export const operatorSettle = operatorAction('settle', ['KEYID'], "Operator: settles a revoked device's honest remainder. The first call holds what the node can vouch the device still held; after the hold the rest goes to its account holder, once.", ([keyId = '']) => ({ path: '/v1/operator/settle', body: { keyId } }));
/** Removes an OEM (`POST /v1/operator/oems/{keyId}/remove`). */
export const operatorRemoveOem = operatorAction('remove-oem', ['KEYID', 'REASON'], 'Operator: removes an OEM; the node registers no new device or wallet it attests (devices registered before keep their certificates).', ([keyId = '', reason = '']) => ({ path: `/v1/operator/oems/${keyId}/remove`, body: { reason } }));
