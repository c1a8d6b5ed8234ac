/** The toy scheme's CLI part: create, balance, deposit and pay (`tally pay NAME AMOUNT@PAYEE`). */
import { UsageError, type CliPart, type WalletVerbContext } from '../../cli/plugin.ts';
import type { ToyWallet } from './wallet.ts';

async function walletClass(): Promise<typeof ToyWallet> {
  return (await import('./wallet.ts')).ToyWallet;
}

async function withToy<T>(context: WalletVerbContext, run: (wallet: ToyWallet) => Promise<T>): Promise<T> {
  const wallet = await (await walletClass()).open(context.home, context.name);
  try {
    return await run(wallet);
  } finally {
    await wallet.close();
  }
}

/** The toy scheme's CLI part. */
export const toyCli: CliPart = {
  handlers: {
    async create({ home, name, values, io }) {
      const wallet = await (await walletClass()).create({ home, name, node: String(values['node']), progress: io.progress });
      try {
        const data = wallet.snapshot();
        return { text: `Created toy wallet ${data.name}, account ${data.user.account}.`, json: { name: data.name, scheme: data.scheme, account: data.user.account, purse: data.slot?.purse ?? null } };
      } finally {
        await wallet.close();
      }
    },
    balance: (context) =>
      withToy(context, async (wallet) => {
        const b = await wallet.balance();
        return { text: `online: ${b.online ?? 'unknown'} ${wallet.currency.code}\noffline: ${b.offline} ${wallet.currency.code}`, json: { name: wallet.name, currency: wallet.currency.code, ...b } };
      }),
    deposit: (context) =>
      withToy(context, async (wallet) => {
        const r = await wallet.deposit(context.args[0] ?? '');
        return { text: `Loaded ${r.amount} ${wallet.currency.code}; purse ${r.offline} ${wallet.currency.code}.`, json: { name: wallet.name, currency: wallet.currency.code, ...r } };
      }),
    pay: (context) =>
      withToy(context, async (wallet) => {
        const match = /^([0-9.]+)@([0-9a-f]{64})$/.exec(context.args[0] ?? '');
        if (match === null) throw new UsageError('a toy payment is AMOUNT@PAYEE (the payee purse key, 64 hex digits)');
        const r = await wallet.pay(match[2] as string, match[1] as string);
        return { text: r.receipt, json: { name: wallet.name, currency: wallet.currency.code, ...r } };
      }),
  },
};
