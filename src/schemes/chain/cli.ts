/**
 * chain-tee's part of the `tally` command. `deposit` moves tokens from the wallet's on-chain
 * account into its offline account (onchainDeposit); `sync` reconciles with the contract;
 * `withdraw` pays out to an on-chain address; `wallet close` closes the account (logout); a payment
 * runs over a live link (`receive` / `pay --connect`); the operator's `mint` to an on-chain address.
 */
import { HOME_OPTION, JSON_OPTION, hostPort, positional, seconds, stringFlag, type CliPart, type WalletVerbContext } from '../../cli/plugin.ts';
import type { ChainWallet, SyncResult, TransferResult } from './wallet.ts';

async function withChain<T>(context: WalletVerbContext, run: (wallet: ChainWallet, resumed: string[]) => Promise<T>): Promise<T> {
  const { ChainWallet } = await import('./wallet.ts');
  const wallet = await ChainWallet.open(context.home, context.name);
  try {
    const resumed = await wallet.resume();
    return await run(wallet, resumed.finished);
  } finally {
    await wallet.close();
  }
}

function transferText(wallet: ChainWallet, r: TransferResult, role: 'payer' | 'payee'): string {
  const c = wallet.currency.code;
  const resent = r.resent > 0 ? ` ${r.resent} earlier payment(s) whose ack was lost were settled too.` : '';
  if (!r.credited) return `${role === 'payer' ? 'The payee declined' : 'Declined'} the payment of ${r.amount} ${c} (ack_fail); offline balance ${r.offline} ${c}.${resent}`;
  return `${role === 'payer' ? 'Paid' : 'Received'} ${r.amount} ${c}; offline balance ${r.offline} ${c}.${resent}`;
}

function syncText(wallet: ChainWallet, r: SyncResult): string[] {
  const c = wallet.currency.code;
  return [
    r.uploads === 0 ? 'Synced: nothing to upload.' : `Synced: ${r.payments} payment(s) uploaded in ${r.uploads} transaction(s) (${r.gasUsed} gas); ${r.freed} settled.`,
    `offline ${r.offline} ${c}; on chain ${r.onChain} ${c}; account ${r.status}.`,
    ...(r.restored !== wallet.format(0n) ? [`${r.restored} ${c} of payments that never reached their payee came back.`] : []),
    ...(r.charged !== wallet.format(0n) ? [`${r.charged} ${c} credited offline was taken back: the chain did not honour it (a forked or voided payment).`] : []),
    ...(r.waiting > 0 ? [`${r.waiting} payment(s) wait on chain (for their payer's funds or the other side's upload).`] : []),
  ];
}

const TO_FLAG = { options: { to: { type: 'string' } }, help: [['--to ADDRESS', "chain-tee: the on-chain address paid (the wallet's own on-chain account by default)"]] } as const;

/** chain-tee's CLI part. */
export const chainCli: CliPart = {
  notes: {
    create: "A chain-tee wallet holds an offline account in its secure element (registered as an enclave on the node's chain) and an on-chain account of its own.",
    balance: 'chain-tee: the offline balance, what is held for payments awaiting their ack, the account on chain and the on-chain account\'s tokens.',
    deposit: "chain-tee: tokens from the wallet's on-chain account into the offline account, credited by the TEE against the node's receipt.",
    withdraw: 'chain-tee: the TEE signs a pay-out to an on-chain address; the wallet syncs at once to settle it.',
    sync: 'chain-tee: the TEE\'s stored payments are uploaded to the contract and its statement taken back.',
    pay: "chain-tee: checks the payee's account bound to the session, then its TEE signs tx_off; the amount is held until the payee's ack.",
    receive: 'chain-tee: the TEE credits at once and answers ack_win; a payment of another amount is declined with ack_fail.',
  },
  flags: { withdraw: TO_FLAG },
  handlers: {
    async create({ home, name, values, io }) {
      const { ChainWallet } = await import('./wallet.ts');
      const wallet = await ChainWallet.create({ home, name, node: typeof values['node'] === 'string' ? values['node'] : '', progress: io.progress });
      try {
        const data = wallet.snapshot();
        const account = await wallet.account();
        const onChain = await wallet.onChainAddress();
        return {
          text: `Created chain-tee wallet ${data.name} (secure element ${data.device?.keyId ?? '?'}), offline account ${account}, on-chain account ${onChain}, at ${data.node}.`,
          json: { name: data.name, scheme: data.scheme, home, node: data.node, account: data.user.account, device: data.device?.keyId ?? null, offlineAccount: account, onChainAccount: onChain },
        };
      } finally {
        await wallet.close();
      }
    },
    balance: (context) =>
      withChain(context, async (wallet) => {
        const b = await wallet.balance();
        const c = wallet.currency.code;
        const lines = [
          `offline: ${b.offline} ${c}${b.pending !== wallet.format(0n) ? ` (and ${b.pending} ${c} held for payments awaiting their ack)` : ''}; account ${b.account ?? 'closed'} ${b.status}`,
          ...(b.debt !== wallet.format(0n) ? [`owed to the chain: ${b.debt} ${c}`] : []),
          `on chain: ${b.onChainAccount === null ? `unknown${b.chainError === undefined ? '' : ` (${b.chainError})`}` : `${b.onChainAccount} ${c}`} in the offline account; ${b.walletTokens ?? '?'} ${c} in the on-chain account ${b.wallet ?? '?'}`,
          ...(b.unsettled > 0 ? [`${b.unsettled} payment(s) not yet settled on chain (tally wallet sync)`] : []),
          ...(b.pendingSteps > 0 ? [`unfinished steps: ${b.pendingSteps}`] : []),
        ];
        return { text: lines.join('\n'), json: { name: wallet.name, scheme: 'chain', currency: c, ...b } };
      }),
    deposit: (context) =>
      withChain(context, async (wallet) => {
        const r = await wallet.deposit(positional(context, 0));
        const c = wallet.currency.code;
        return { text: `Deposited ${r.amount} ${c} into the offline account (transaction ${r.transaction}); offline balance ${r.offline} ${c}.`, json: { name: wallet.name, scheme: 'chain', currency: c, ...r } };
      }),
    withdraw: (context) =>
      withChain(context, async (wallet) => {
        const r = await wallet.withdraw(positional(context, 0), stringFlag(context, 'to'));
        const c = wallet.currency.code;
        return { text: [`Withdrew ${r.amount} ${c} to ${r.to} on chain.`, ...syncText(wallet, r.sync)].join('\n'), json: { name: wallet.name, scheme: 'chain', currency: c, ...r } };
      }),
    sync: (context) =>
      withChain(context, async (wallet, resumed) => {
        const r = await wallet.sync();
        const lines = [...syncText(wallet, r), ...(resumed.length > 0 ? [`Finished after a crash: ${resumed.join(', ')}.`] : [])];
        return { text: lines.join('\n'), json: { name: wallet.name, scheme: 'chain', currency: wallet.currency.code, resumed, ...r } };
      }),
    receive: (context) =>
      withChain(context, async (wallet) => {
        const host = stringFlag(context, 'host') ?? '127.0.0.1';
        const r = await wallet.receive(positional(context, 0), {
          port: Number(context.values['listen']),
          host,
          timeoutMs: seconds(stringFlag(context, 'timeout')),
          onListening: (real) => context.io.announce(`Waiting for a payer on ${host}:${real} ...`, { event: 'listening', host, port: real }),
        });
        return { text: transferText(wallet, r, 'payee'), json: { name: wallet.name, scheme: 'chain', currency: wallet.currency.code, ...r } };
      }),
    pay: (context) =>
      withChain(context, async (wallet) => {
        const { host, port } = hostPort(stringFlag(context, 'connect') ?? '');
        const r = await wallet.pay(host, port, stringFlag(context, 'expect') ?? null, { timeoutMs: seconds(stringFlag(context, 'timeout')) });
        return { text: transferText(wallet, r, 'payer'), json: { name: wallet.name, scheme: 'chain', currency: wallet.currency.code, ...r } };
      }),
  },
  verbs: {
    'wallet close': {
      usage: 'tally wallet close NAME [--to ADDRESS] [--home DIR] [--json]',
      summary:
        "Account holder, online (chain-tee): closes the offline account (the paper's logout): a sync, the TEE's closing of the whole balance to an on-chain address (the wallet's own on-chain account by default), a sync that settles it, then the TEE deletes the account's keys.",
      options: [['--to ADDRESS', 'the on-chain address paid'], HOME_OPTION, JSON_OPTION],
      example: 'tally wallet close bob',
      capability: 'close',
      positionals: [],
      flags: { to: { type: 'string' } },
      secureElement: true,
      run: (context) =>
        withChain(context, async (wallet) => {
          const r = await wallet.closeAccount(stringFlag(context, 'to'));
          const c = wallet.currency.code;
          return { text: `Closed offline account ${r.account}: ${r.amount} ${c} paid to ${r.to} on chain; its keys are deleted.`, json: { name: wallet.name, scheme: 'chain', currency: c, ...r } };
        }),
    },
  },
  operatorMint: {
    target: /^0x[0-9a-fA-F]{40}$/,
    describe: 'an on-chain address (0x...) or a chain-tee wallet of this home: mints the chain token to it',
    async resolve(name, home, env) {
      const { onChainAddressOf } = await import('./wallet.ts');
      return onChainAddressOf(home, env, name);
    },
    path: '/v1/chain/operator/mint',
  },
};
