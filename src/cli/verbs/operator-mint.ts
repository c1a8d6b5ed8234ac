/**
 * `tally operator mint`: the central bank issues money into an online account, or, for a scheme
 * whose money is a token on a chain, to an on-chain address (or a wallet's on-chain account).
 */
import { toHex } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import type { Scheme } from '../../schemes/index.ts';
import { HOME_OPTION, JSON_OPTION, nodeUrl, OPERATOR_FLAGS, OPERATOR_OPTIONS, operatorToken, parse, type OperatorMint, type Verb } from '../plugin.ts';

const idempotencyKey = () => `mint-${toHex(crypto.getRandomValues(new Uint8Array(12)))}`;

/** The verb, with the schemes that mint elsewhere than the ledger. */
export function operatorMint(schemes: readonly Scheme[]): Verb {
  const others = schemes.flatMap((s) => (s.cli.operatorMint === undefined ? [] : [{ scheme: s.name, mint: s.cli.operatorMint }]));
  return {
    usage: 'tally operator mint ACCOUNT AMOUNT [--node URL] [--token T | --data DIR] [--home DIR] [--json]',
    summary: [
      'Operator: the central bank issues AMOUNT (decimal major units, such as 100.00) into an online account. ACCOUNT is an account id (user:...) or the NAME of a wallet of this home.',
      ...others.map((o) => `${o.scheme}: ACCOUNT may also be ${o.mint.describe}.`),
    ].join(' '),
    options: [...OPERATOR_OPTIONS, HOME_OPTION, JSON_OPTION],
    example: 'tally operator mint alice 100.00',
    async run(argv, io) {
      const { values, args } = parse(argv, OPERATOR_FLAGS, ['ACCOUNT', 'AMOUNT']);
      const [{ resolveHome }, { NodeClient }, { mintAnswer }, { readWalletData }] = await Promise.all([
        import('../../wallet/home.ts'),
        import('../../wallet/node-client.ts'),
        import('../../wallet/node-answers.ts'),
        import('../../wallet/wallet-common.ts'),
      ]);
      const [target, amount] = args as [string, string];
      const token = await operatorToken(values, io.env);
      const direct = others.find((o) => o.mint.target.test(target));
      if (direct !== undefined) return mintElsewhere(direct.mint, target, amount, nodeUrl(values.node, io.env), token);
      let account = target;
      let url = nodeUrl(values.node, io.env);
      if (!target.includes(':')) {
        const home = resolveHome(values.home, io.env);
        // A damaged wallet file is STATE_CORRUPT naming the file, not a raw parse error.
        const read = await readWalletData(home, target);
        if (read === null) throw new TallyError('WALLET_NOT_FOUND', `${target} is neither an account id (user:...) nor a wallet in ${home}`, { name: target });
        const elsewhere = others.find((o) => o.scheme === read.data.scheme);
        if (elsewhere !== undefined) {
          const resolved = await elsewhere.mint.resolve(target, values.home, io.env);
          return mintElsewhere(elsewhere.mint, resolved.address, amount, values.node === undefined ? resolved.node : url, token);
        }
        account = read.data.user.account;
        if (values.node === undefined) url = read.data.node;
      }
      const node = new NodeClient(url);
      const answer = await node.operator(token, 'POST', '/v1/operator/mint', { answer: mintAnswer, body: { account, amount }, idempotencyKey: idempotencyKey() });
      const t = answer.body.transfer;
      return { text: `Minted ${t.amount} ${t.currency} into ${account} (transfer ${t.id}).`, json: { account, amount: t.amount, currency: t.currency, transfer: t.id } };
    },
  };
}

async function mintElsewhere(mint: OperatorMint, to: string, amount: string, url: string, token: string) {
  const [{ NodeClient }, { chainMintAnswer }] = await Promise.all([import('../../wallet/node-client.ts'), import('../../wallet/node-answers.ts')]);
  const answer = await new NodeClient(url).operator(token, 'POST', mint.path, { answer: chainMintAnswer, body: { to, amount }, idempotencyKey: idempotencyKey() });
  const m = answer.body;
  return { text: `Minted ${m.amount} ${m.currency} to ${m.to} on chain (transaction ${m.transaction})${m.gas ? '; gas given on the dev chain' : ''}.`, json: { to: m.to, amount: m.amount, currency: m.currency, transaction: m.transaction, gas: m.gas } };
}
