/**
 * OPERA's operator verbs: what deposits and settlement found, with the devices the escrow tags of a
 * token paid twice named (and the node revoked).
 */
import { JSON_OPTION, nodeUrl, OPERATOR_FLAGS, OPERATOR_OPTIONS, operatorToken, parse, type Verb } from '../../cli/plugin.ts';
import { NodeClient } from '../../wallet/plugin.ts';

interface Finding {
  kind: string;
  serial: string | null;
  txid: string | null;
  device: string;
  first: string | null;
  hop: number | null;
  revocationVersion: number | null;
  at: string;
}

/** One finding as a line. */
function line(f: Finding): string {
  const what = f.serial !== null ? `token ${f.serial}` : `transaction ${f.txid ?? '?'}`;
  const revoked = f.revocationVersion === null ? '' : `, revoked (list version ${f.revocationVersion})`;
  switch (f.kind) {
    case 'paid-twice':
      return `${f.at}  ${what} paid twice: its copies part at hop ${f.hop ?? '?'}; device ${f.device} signed both${revoked}`;
    case 'double-spend':
      return `${f.at}  ${what} deposited again by ${f.device} (first by ${f.first ?? 'nobody known'})`;
    default:
      return `${f.at}  ${f.kind}: ${what}, device ${f.device}${revoked}`;
  }
}

/** `tally operator opera-findings`. */
const findings: Verb = {
  usage: 'tally operator opera-findings [--node URL] [--token T | --data DIR] [--json]',
  summary:
    'Operator, OPERA: tokens deposited twice (both depositors), the device whose escrow tags signed both copies of such a token (revoked by the node), refunds asked for spent tokens and payers that denied a release.',
  options: [...OPERATOR_OPTIONS, JSON_OPTION],
  example: 'tally operator opera-findings --json',
  async run(argv, io) {
    const { values } = parse(argv, OPERATOR_FLAGS, []);
    const answer = await new NodeClient(nodeUrl(values.node, io.env)).operator(await operatorToken(values, io.env), 'GET', '/v1/opera/operator/findings', {});
    const body = answer.body as { findings?: Finding[] };
    const list = Array.isArray(body.findings) ? body.findings : [];
    return { text: list.length === 0 ? 'Nothing found.' : list.map(line).join('\n'), json: { findings: list } };
  },
};

/** OPERA's operator verbs, by their words. */
export const operaOperatorVerbs: Readonly<Record<string, Verb>> = {
  'operator opera-findings': findings,
};
