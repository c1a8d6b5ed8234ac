/** The operator's verbs: `operator mint`, `operator oem` (the factory step for software secure elements), `audit`. */
import { toHex } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import type { Scheme } from '../../schemes/index.ts';
import { enrollOem } from '../../wallet/factory.ts';
import { resolveHome } from '../../wallet/home.ts';
import { NodeClient } from '../../wallet/node-client.ts';
import { readWalletData } from '../../wallet/wallet-common.ts';
import { HOME_OPTION, JSON_OPTION, nodeUrl, OPERATOR_OPTIONS, operatorToken, parse, type Verb } from '../plugin.ts';

const operatorFlags = { node: { type: 'string' }, token: { type: 'string' }, data: { type: 'string' } } as const;

/** The operator's verbs over the registry's schemes (`operator oem` allows every scheme's trusted apps). */
export function operatorVerbs(schemes: readonly Scheme[]): Record<string, Verb> {
  const builds = schemes.flatMap((s) => s.wallet.trustedApps);
  return {
    'operator mint': {
    usage: 'tally operator mint ACCOUNT AMOUNT [--node URL] [--token T | --data DIR] [--home DIR] [--json]',
    summary: 'Operator: the central bank issues AMOUNT (decimal major units, such as 100.00) into an online account. ACCOUNT is an account id (user:...) or the NAME of a wallet of this home.',
    options: [...OPERATOR_OPTIONS, HOME_OPTION, JSON_OPTION],
    example: 'tally operator mint alice 100.00',
    async run(argv, io) {
      const { values, args } = parse(argv, operatorFlags, ['ACCOUNT', 'AMOUNT']);
      const [target, amount] = args as [string, string];
      let account = target;
      let url = nodeUrl(values.node, io.env);
      if (!target.includes(':')) {
        const home = resolveHome(values.home, io.env);
        // A damaged wallet file is STATE_CORRUPT naming the file, not a raw parse error.
        const read = await readWalletData(home, target);
        if (read === null) throw new TallyError('WALLET_NOT_FOUND', `${target} is neither an account id (user:...) nor a wallet in ${home}`, { name: target });
        account = read.data.user.account;
        if (values.node === undefined) url = read.data.node;
      }
      const node = new NodeClient(url);
      const answer = await node.operator<{ transfer: { id: string; amount: string; currency: string } }>(await operatorToken(values, io.env), 'POST', '/v1/operator/mint', {
        body: { account, amount },
        idempotencyKey: `mint-${toHex(crypto.getRandomValues(new Uint8Array(12)))}`,
      });
      const t = answer.body.transfer;
      return { text: `Minted ${t.amount} ${t.currency} into ${account} (transfer ${t.id}).`, json: { account, amount: t.amount, currency: t.currency, transfer: t.id } };
    },
  },  'operator oem': {
    usage: 'tally operator oem [--node URL] [--token T | --data DIR] [--home DIR] [--json]',
    summary: "Operator, the factory step: creates this home's software OEM key if needed, enrols it at the node and allows the current builds of every scheme's trusted apps. Run it once per home and node, before creating wallets with a secure element.",
    options: [...OPERATOR_OPTIONS, HOME_OPTION, JSON_OPTION],
    example: 'tally operator oem --data ./tally-data',
    async run(argv, io) {
      const { values } = parse(argv, operatorFlags, []);
      const home = resolveHome(values.home, io.env);
      const node = new NodeClient(nodeUrl(values.node, io.env));
      const result = await enrollOem(home, node, await operatorToken(values, io.env), builds);
      return {
        text: `${result.created ? 'Created' : 'Reused'} the software OEM key ${result.keyId} in ${home}; enrolled at ${node.url}; trusted app builds allowed: ${result.measurements.map((m) => `${m.scheme} ${m.measurement}`).join(', ')}.`,
        json: { home, node: node.url, oem: result.keyId, measurement: result.measurement, measurements: result.measurements, created: result.created },
      };
    },
  },  audit: {
    usage: 'tally audit [--node URL] [--token T | --data DIR] [--json]',
    summary: "Operator: the node's audit of its ledger: the money issued must equal the online accounts plus the offline float.",
    options: [...OPERATOR_OPTIONS, JSON_OPTION],
    example: 'tally audit --data ./tally-data',
    async run(argv, io) {
      const { values } = parse(argv, operatorFlags, []);
      const node = new NodeClient(nodeUrl(values.node, io.env));
      type Exposure = { scheme: string; floatAccount: string; float: string; expected: string; difference: string; attributed: string; unexplained: string; balanced: boolean; exposed: { device: string; amount: string; fraud: boolean }[] };
      type Audit = {
        balanced: boolean;
        ledgerBalanced: boolean;
        currency: string;
        currencies: { currency: string; totalIssued: string; totalOnline: string; totalOfflineFloat: string; balanced: boolean }[];
        exposure: Exposure[];
        problemCount: number;
        transferCount: number;
      };
      const answer = await node.operator<Audit>(await operatorToken(values, io.env), 'GET', '/v1/audit');
      const body = answer.body;
      const cur = body.currency;
      const lines = [
        `Audit: ${body.balanced ? 'balanced' : 'NOT BALANCED'}.`,
        `Ledger ${body.ledgerBalanced ? 'balanced' : 'NOT BALANCED'} (${body.transferCount} transfers, ${body.problemCount} problems).`,
        ...body.currencies.map((c) => `${c.currency}: issued ${c.totalIssued} = online ${c.totalOnline} + offline float ${c.totalOfflineFloat} ${c.currency}${c.balanced ? '' : '  <- does not add up'}`),
        ...body.exposure.flatMap((e) => [
          `${e.scheme}: ${e.floatAccount} holds ${e.float} ${cur}; devices and payees are known to be owed ${e.expected} ${cur}; difference ${e.difference} ${cur}` +
            (e.balanced ? '' : `, of which ${e.unexplained} ${cur} nobody is named for yet  <- value created offline, or devices that have not synced`),
          ...e.exposed.map((h) => `  device ${h.device} paid out ${h.amount} ${cur} more than the node knows it received${h.fraud ? ' (named in a fraud case)' : ''}`),
        ]),
      ];
      return { text: lines.join('\n'), json: body };
    },
  },  };
}
