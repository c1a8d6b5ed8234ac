/**
 * OPERA's part of the `tally` command: the shell's wallet verbs for OPERA wallets. `deposit` has the
 * bank charge tokens into the ODW from the online account; `withdraw` deposits tokens back; `sync`
 * fetches the bank's parameters and settles online a transaction the ODW's log still holds; a
 * payment is the three-stage exchange over an anonymous link (`receive` / `pay --connect`).
 */
import { hostPort, positional, seconds, stringFlag, type CliPart, type WalletVerbContext } from '../../cli/plugin.ts';
import { operaOperatorVerbs } from './cli-operator.ts';
import type { OperaWallet, TransferResult } from './wallet.ts';

async function withOpera<T>(context: WalletVerbContext, run: (wallet: OperaWallet, resumed: string[]) => Promise<T>): Promise<T> {
  const { OperaWallet } = await import('./wallet.ts');
  const wallet = await OperaWallet.open(context.home, context.name);
  try {
    const resumed = await wallet.resume();
    return await run(wallet, resumed.finished);
  } finally {
    await wallet.close();
  }
}

function transferText(wallet: OperaWallet, r: TransferResult, role: 'payer' | 'payee'): string {
  const c = wallet.currency.code;
  const earlier = r.settled === null ? '' : ` An interrupted payment with this wallet was set in order first (${r.settled === 'paid' ? 'found paid' : 'its tokens came back'}).`;
  if (r.plan === 'resume') return `Finished an interrupted payment from the logs: ${role === 'payer' ? 'paid' : 'received'} ${r.amount} ${c}; offline balance ${r.offline} ${c}. Run the payment again if another one was meant.`;
  const change = r.change === null ? '' : ` (${r.tokens} token(s) ${role === 'payer' ? 'offered' : 'taken'}, ${r.change} ${c} ${role === 'payer' ? 'taken back' : 'given back'} as change)`;
  return `${role === 'payer' ? 'Paid' : 'Received'} ${r.amount} ${c}${change || ` in ${r.tokens} token(s)`}; offline balance ${r.offline} ${c}.${earlier}`;
}

/** OPERA's CLI part. */
export const operaCli: CliPart = {
  operatorVerbs: operaOperatorVerbs,
  twoTierDemo: async (context) => (await import('./cli-demo-two-tier.ts')).operaTwoTierDemo(context),
  notes: {
    create: "An OPERA wallet's ODW is registered as a device attested by the OEM, and gets the OEM's anonymous credential after its TPM quotes the ODW build (swtpm needed).",
    balance: 'An OPERA wallet lists its tokens by value, and a transaction its log still holds.',
    deposit: "OPERA: the bank charges tokens into the ODW from the online account, in the fewest of its denominations.",
    withdraw: 'OPERA: tokens worth exactly AMOUNT (or `all`) are deposited back at the bank.',
    sync: "OPERA: fetches the bank's parameters, and settles online a transaction the ODW's log still holds (the ODW gives up finishing it offline).",
    pay: 'OPERA: pays the amount the payee asks in tokens, through the three-stage exchange (when the tokens cannot make it exactly, a little more, and the payee gives change in its own tokens); an interrupted payment to the same wallet is finished first, from the logs.',
    receive: "OPERA: the tokens are usable once the payer's Stage 3 key arrives; when the payer's tokens are worth more, the change goes back in this wallet's own tokens; an interrupted payment from the same wallet is finished first, from the logs.",
  },
  handlers: {
    async create({ home, name, values, io }) {
      const { OperaWallet } = await import('./wallet.ts');
      const wallet = await OperaWallet.create({ home, name, node: typeof values['node'] === 'string' ? values['node'] : '', progress: io.progress });
      try {
        const data = wallet.snapshot();
        return {
          text: `Created OPERA wallet ${data.name} (ODW ${data.device?.keyId ?? '?'}, anonymous credential installed), account ${data.user.account}, at ${data.node}.`,
          json: { name: data.name, scheme: data.scheme, home, node: data.node, account: data.user.account, device: data.device?.keyId ?? null },
        };
      } finally {
        await wallet.close();
      }
    },
    balance: (context) =>
      withOpera(context, async (wallet) => {
        const b = await wallet.balance();
        const c = wallet.currency.code;
        const p = b.pending;
        const lines = [
          `online:  ${b.online === null ? `unknown (${b.onlineError ?? 'node unreachable'})` : `${b.online} ${c}`}`,
          `offline: ${b.offline} ${c} in ${b.tokens.reduce((s, x) => s + x.count, 0)} token(s)`,
          ...b.tokens.map((x) => `  ${String(x.count).padStart(4)} x ${x.value} ${c}`),
          ...(p === null ? [] : [`interrupted ${p.mode === 'send' ? 'payment' : 'receipt'}: ${p.amount} ${c}, ${p.done} of ${p.tokens} token(s)${p.change === null ? '' : `, change ${p.change.amount} ${c} (${p.change.done} of ${p.change.tokens} token(s))`}${p.settling ? ', being settled online (sync)' : ' (finished at the next payment with the same wallet, or settled online at a sync)'}`]),
          ...(b.depositPending !== '0.00' ? [`sent to the bank, not yet receipted: ${b.depositPending} ${c}`] : []),
          ...(b.pendingSteps > 0 ? [`unfinished steps: ${b.pendingSteps}`] : []),
        ];
        return { text: lines.join('\n'), json: { name: wallet.name, scheme: 'opera', currency: c, ...b } };
      }),
    deposit: (context) =>
      withOpera(context, async (wallet) => {
        const r = await wallet.deposit(positional(context, 0));
        const c = wallet.currency.code;
        return { text: `Deposited ${r.amount} ${c} as ${r.tokens} token(s) charged by the bank; offline balance ${r.offline} ${c}.`, json: { name: wallet.name, scheme: 'opera', currency: c, ...r } };
      }),
    withdraw: (context) =>
      withOpera(context, async (wallet) => {
        const r = await wallet.withdraw(positional(context, 0));
        const c = wallet.currency.code;
        const refused = r.doubleSpent + r.refused > 0 ? ` The bank refused ${r.doubleSpent} token(s) as spent before and ${r.refused} as invalid.` : '';
        const presented = r.presented > 0 ? ` ${r.presented} token(s) of other banks were presented to them; the account is credited once each claim is settled.` : '';
        return { text: `Withdrew ${r.credited} ${c} of ${r.amount} ${c} in ${r.tokens} token(s) to the online account; offline balance ${r.offline} ${c}.${refused}${presented}`, json: { name: wallet.name, scheme: 'opera', currency: c, ...r } };
      }),
    sync: (context) =>
      withOpera(context, async (wallet, resumed) => {
        const r = await wallet.sync();
        const c = wallet.currency.code;
        const outcome = r.settled === null ? 'no interrupted transaction to settle' : `an interrupted transaction settled online: ${r.settled.outcome}${r.settled.credited !== '0.00' ? `, ${r.settled.credited} ${c} credited to the online account` : ''}`;
        const lines = [`Synced: ${outcome}.`, ...(resumed.length > 0 ? [`Finished after a crash: ${resumed.join(', ')}.`] : [])];
        return { text: lines.join('\n'), json: { name: wallet.name, scheme: 'opera', currency: c, resumed, ...r } };
      }),
    receive: (context) =>
      withOpera(context, async (wallet) => {
        const host = stringFlag(context, 'host') ?? '127.0.0.1';
        const r = await wallet.receive(positional(context, 0), {
          port: Number(context.values['listen']),
          host,
          timeoutMs: seconds(stringFlag(context, 'timeout')),
          onListening: (real) => context.io.announce(`Waiting for a payer on ${host}:${real} ...`, { event: 'listening', host, port: real }),
        });
        return { text: transferText(wallet, r, 'payee'), json: { name: wallet.name, scheme: 'opera', currency: wallet.currency.code, ...r } };
      }),
    pay: (context) =>
      withOpera(context, async (wallet) => {
        const { host, port } = hostPort(stringFlag(context, 'connect') ?? '');
        const r = await wallet.pay(stringFlag(context, 'expect') ?? null, host, port, { timeoutMs: seconds(stringFlag(context, 'timeout')) });
        return { text: transferText(wallet, r, 'payer'), json: { name: wallet.name, scheme: 'opera', currency: wallet.currency.code, ...r } };
      }),
  },
};
