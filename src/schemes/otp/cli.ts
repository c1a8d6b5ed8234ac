/**
 * OTP's part of the `tally` command: the shell's wallet verbs for OTP wallets. `deposit` has the
 * bank sign coins blindly for an amount of the online account; `withdraw` deposits exact coins back;
 * `sync` fetches the bank's parameters and exchange keys and settles coins cut in flight; a payment
 * runs anonymously over a live link (`receive` / `pay --connect`).
 */
import { hostPort, positional, seconds, stringFlag, type CliPart, type WalletVerbContext } from '../../cli/plugin.ts';
import { otpOperatorVerbs } from './cli-operator.ts';
import type { OtpWallet, TransferResult } from './wallet.ts';

async function withOtp<T>(context: WalletVerbContext, run: (wallet: OtpWallet, resumed: string[]) => Promise<T>): Promise<T> {
  const { OtpWallet } = await import('./wallet.ts');
  const wallet = await OtpWallet.open(context.home, context.name);
  try {
    const resumed = await wallet.resume();
    return await run(wallet, resumed.finished);
  } finally {
    await wallet.close();
  }
}

function transferText(wallet: OtpWallet, r: TransferResult, role: 'payer' | 'payee'): string {
  const c = wallet.currency.code;
  const change = r.change > 0 ? (role === 'payer' ? `, ${r.change} coin(s) back as change` : `, ${r.change} coin(s) given back as change`) : '';
  const resent = r.resentAcknowledged > 0 ? ` ${r.resentAcknowledged} coin(s) of an earlier payment were acknowledged.` : '';
  return `${role === 'payer' ? 'Paid' : 'Received'} ${r.amount} ${c} in ${r.coins} coin(s)${change}; offline balance ${r.offline} ${c}.${resent}`;
}

/** OTP's CLI part. */
export const otpCli: CliPart = {
  operatorVerbs: otpOperatorVerbs,
  notes: {
    create: 'An OTP wallet is registered as a device attested by the OEM; its payments are anonymous.',
    balance: 'An OTP wallet lists its coins by denomination.',
    deposit: 'OTP: the bank signs coins blindly (it cannot link them to their later deposit).',
    withdraw: 'OTP: exact coins for the amount are deposited at the bank.',
    sync: 'OTP: fetches exchange keys (to receive) and settles coins cut in flight.',
    pay: 'OTP: pays anonymously in coins over the link, with change from the payee when needed.',
    receive: 'OTP: the coins are in the wallet at once; the payee gives change from its own coins when the payer cannot pay exactly.',
  },
  handlers: {
    async create({ home, name, values, io }) {
      const { OtpWallet } = await import('./wallet.ts');
      const wallet = await OtpWallet.create({ home, name, node: typeof values['node'] === 'string' ? values['node'] : '', progress: io.progress });
      try {
        const data = wallet.snapshot();
        return {
          text: `Created OTP wallet ${data.name} (secure element ${data.device?.keyId ?? '?'}), account ${data.user.account}, at ${data.node}. Run tally wallet sync ${data.name} to get exchange keys.`,
          json: { name: data.name, scheme: data.scheme, home, node: data.node, account: data.user.account, device: data.device?.keyId ?? null },
        };
      } finally {
        await wallet.close();
      }
    },
    balance: (context) =>
      withOtp(context, async (wallet) => {
        const b = await wallet.balance();
        const c = wallet.currency.code;
        const lines = [
          `online:  ${b.online === null ? `unknown (${b.onlineError ?? 'node unreachable'})` : `${b.online} ${c}`}`,
          `offline: ${b.offline} ${c} in ${b.coins.reduce((s, x) => s + x.count, 0)} coin(s)`,
          ...b.coins.map((x) => `  ${String(x.count).padStart(4)} x ${x.denomination} ${c}`),
          ...(b.inFlight.count > 0 ? [`in flight: ${b.inFlight.amount} ${c} in ${b.inFlight.count} coin(s) awaiting the payee's ACK (sent again at the next payment, refunded at a sync after their claim window)`] : []),
          ...(b.depositPending !== '0.00' ? [`sent to the bank, not yet receipted: ${b.depositPending} ${c} (sent again at the next withdraw or sync)`] : []),
          `exchange keys: ${b.exchangeKeys}${b.exchangeKeys === 0 ? ' (tally wallet sync to receive payments)' : ''}`,
          `trusted time: ${b.trustedTime ?? 'none yet (sync)'}`,
          ...(b.pendingSteps > 0 ? [`unfinished steps: ${b.pendingSteps}`] : []),
        ];
        return { text: lines.join('\n'), json: { name: wallet.name, scheme: 'otp', currency: c, ...b } };
      }),
    deposit: (context) =>
      withOtp(context, async (wallet) => {
        const r = await wallet.deposit(positional(context, 0));
        const c = wallet.currency.code;
        return { text: `Deposited ${r.amount} ${c} as ${r.coins} coin(s) signed blindly by the bank; offline balance ${r.offline} ${c}.`, json: { name: wallet.name, scheme: 'otp', currency: c, ...r } };
      }),
    withdraw: (context) =>
      withOtp(context, async (wallet) => {
        const r = await wallet.withdraw(positional(context, 0));
        const c = wallet.currency.code;
        const refused = r.doubleSpent + r.refused > 0 ? ` The bank refused ${r.doubleSpent} coin(s) as spent before and ${r.refused} as invalid.` : '';
        const presented = r.presented > 0 ? ` ${r.presented} coin(s) of other banks presented to their bank: credited once it accepts.` : '';
        return { text: `Withdrew ${r.credited} ${c} of ${r.amount} ${c} in ${r.coins} coin(s) to the online account; offline balance ${r.offline} ${c}.${refused}${presented}`, json: { name: wallet.name, scheme: 'otp', currency: c, ...r } };
      }),
    sync: (context) =>
      withOtp(context, async (wallet, resumed) => {
        const r = await wallet.sync();
        const c = wallet.currency.code;
        const lines = [
          `Synced: ${r.keys} exchange key(s) held; trusted time ${new Date(r.time).toISOString()}.`,
          ...(r.settled > 0 ? [`${r.settled} coin(s) in flight settled: ${r.refunded} ${c} refunded to the online account.`] : []),
          ...(r.taken > 0 ? [`${r.taken} of them had been taken by their payee, who paid them on: the bank settled them with that holder.`] : []),
          ...(Number(r.lost) > 0 ? [`${r.lost} ${c} lost: coins paid twice before they reached this wallet, whose other copy the bank settled.`] : []),
          ...(r.inFlight > 0 ? [`${r.inFlight} coin(s) still in flight (settled at a sync after their claim window).`] : []),
          ...(resumed.length > 0 ? [`Finished after a crash: ${resumed.join(', ')}.`] : []),
        ];
        return { text: lines.join('\n'), json: { name: wallet.name, scheme: 'otp', currency: c, resumed, ...r } };
      }),
    receive: (context) =>
      withOtp(context, async (wallet) => {
        const host = stringFlag(context, 'host') ?? '127.0.0.1';
        const r = await wallet.receive(positional(context, 0), {
          port: Number(context.values['listen']),
          host,
          timeoutMs: seconds(stringFlag(context, 'timeout')),
          onListening: (real) => context.io.announce(`Waiting for a payer on ${host}:${real} ...`, { event: 'listening', host, port: real }),
        });
        return { text: transferText(wallet, r, 'payee'), json: { name: wallet.name, scheme: 'otp', currency: wallet.currency.code, ...r } };
      }),
    pay: (context) =>
      withOtp(context, async (wallet) => {
        const { host, port } = hostPort(stringFlag(context, 'connect') ?? '');
        const r = await wallet.pay(host, port, stringFlag(context, 'expect') ?? null, { timeoutMs: seconds(stringFlag(context, 'timeout')) });
        return { text: transferText(wallet, r, 'payer'), json: { name: wallet.name, scheme: 'otp', currency: wallet.currency.code, ...r } };
      }),
  },
  demo: async (context) => (await import('./cli-demo.ts')).otpDemo(context),
  twoTierDemo: async (context) => (await import('./cli-demo-two-tier.ts')).otpTwoTierDemo(context),
};
