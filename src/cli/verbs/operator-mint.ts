/** `tally operator mint`: the central bank issues money into an online account. */
import { toHex } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import { HOME_OPTION, JSON_OPTION, nodeUrl, OPERATOR_FLAGS, OPERATOR_OPTIONS, operatorToken, parse, type Verb } from '../plugin.ts';

/** The verb. */
export const operatorMint: Verb = {
  usage: 'tally operator mint ACCOUNT AMOUNT [--node URL] [--token T | --data DIR] [--home DIR] [--json]',
  summary: 'Operator: the central bank issues AMOUNT (decimal major units, such as 100.00) into an online account. ACCOUNT is an account id (user:...) or the NAME of a wallet of this home.',
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
    const answer = await node.operator(await operatorToken(values, io.env), 'POST', '/v1/operator/mint', {
    answer: mintAnswer,
      body: { account, amount },
      idempotencyKey: `mint-${toHex(crypto.getRandomValues(new Uint8Array(12)))}`,
    });
    const t = answer.body.transfer;
    return { text: `Minted ${t.amount} ${t.currency} into ${account} (transfer ${t.id}).`, json: { account, amount: t.amount, currency: t.currency, transfer: t.id } };
  },
  };
