/**
 * DOT-M's part of the `tally` command: the shell's wallet verbs for DOT-M wallets. The verbs that
 * need the account key or the secure element's password check ask for the payment password at a
 * prompt, or read $TALLY_PASSWORD; a DOT-M payment runs over a live link (`receive` / `pay --connect`).
 */
import { TallyError, isTallyError } from '../../core/errors.ts';
import { endedLines, HOME_OPTION, hostPort, JSON_OPTION, optionalPassword, readPassword, seconds, UsageError, positional, stringFlag, type CliPart, type VerbIo, type WalletVerbContext } from '../../cli/plugin.ts';
import type { DotmTransfer, DotmWallet } from './wallet.ts';

/** The wallet class, loaded when a verb runs (listing the verbs loads no wallet code). */
async function walletClass(): Promise<typeof DotmWallet> {
  return (await import('./wallet.ts')).DotmWallet;
}

/** The payment password of a verb that needs the account key. */
function password(env: VerbIo['env']): Promise<string> {
  return readPassword(env, 'Payment password: ');
}

/**
 * Opens a DOT-M wallet, opens its account key with `password` when one is given (the verbs that need
 * the node or a link; `optional`: a locked wallet or a missing password leaves the key sealed),
 * finishes what a crash cut short (§3.3.5), runs, closes.
 */
async function withDotm<T>(
  context: WalletVerbContext,
  run: (wallet: DotmWallet, recovered: string[], resumed: Awaited<ReturnType<DotmWallet['recover']>>) => Promise<T>,
  unlock?: { password: string | null; optional?: boolean },
): Promise<T> {
  // The password also seals the account key of a wallet an earlier version kept in the clear, as it moves into the store.
  const wallet = await (await walletClass()).open(context.home, context.name, { password: unlock?.password ?? undefined });
  try {
    if (unlock?.password != null) {
      try {
        await wallet.unlockAccount(unlock.password);
      } catch (e) {
        if (unlock.optional !== true || !isTallyError(e, 'SE_REJECTED') || e.details.reason !== 'PASSWORD_LOCKED') throw e;
      }
    } else if (unlock !== undefined && unlock.optional !== true) {
      throw new TallyError('PASSWORD_MISSING', 'the payment password is needed', {});
    }
    const recovered = await wallet.recover();
    return await run(wallet, recovered.finished, recovered);
  } finally {
    await wallet.close();
  }
}

function transferText(wallet: DotmWallet, r: DotmTransfer, role: 'payer' | 'payee'): string {
  const c = wallet.currency.code;
  const shape = `${r.blocks} block(s), ${r.records} earlier record(s)`;
  if (r.status === 'rolled-back') return `Rolled back ${r.amount} ${c} (transaction ${r.tsn}): the payer's success message did not come (${r.error ?? ''}). If the payer paid, the node gives it back after both sync.`;
  return role === 'payer' ? `Paid ${r.amount} ${c} over the link (transaction ${r.tsn}, ${shape}); the payee confirmed.` : `Received ${r.amount} ${c} (transaction ${r.tsn}, ${shape}).`;
}

/** DOT-M's CLI part. */
export const dotmCli: CliPart = {
  notes: {
    create: 'A DOT-M wallet asks for its payment password at a prompt, or reads $TALLY_PASSWORD.',
    balance: 'A DOT-M wallet lists its currency blocks.',
    recover: "DOT-M: the payment password (prompt, or $TALLY_PASSWORD) opens the account key and becomes the new secure element's.",
    pay: 'DOT-M: pays over the link in the nine steps; it asks for the payment password, or reads $TALLY_PASSWORD.',
    receive: 'DOT-M: the payment is in the wallet at once.',
  },
  flags: {
    deposit: { options: { blocks: { type: 'string' } }, help: [['--blocks N', 'DOT-M: split the amount into N currency blocks (1 to 20, default 1)']] },
  },
  handlers: {
    async create({ home, name, values, io }) {
      const pwd = await readPassword(io.env, 'Payment password for the new wallet: ', { confirm: true });
      const wallet = await (await walletClass()).create({ home, name, node: typeof values['node'] === 'string' ? values['node'] : '', password: pwd, progress: io.progress });
      try {
        const data = wallet.snapshot();
        const keys = data.slot;
        return {
          text: `Created DOT-M wallet ${data.name} (wallet key ${keys?.wallet ?? '?'}, user key ${keys?.user ?? '?'}), account ${data.user.account}, at ${data.node}.`,
          json: { name: data.name, scheme: data.scheme, home, node: data.node, account: data.user.account, user: keys?.user ?? null, wallet: keys?.wallet ?? null },
        };
      } finally {
        await wallet.close();
      }
    },
    async balance(context) {
      const pwd = await optionalPassword(context.io.env, 'Payment password: ');
      return withDotm(context, async (wallet, _recovered, resumed) => {
        const b = await wallet.balance();
        const c = wallet.currency.code;
        const lines = [
          `online:  ${b.online === null ? `unknown (${b.onlineError ?? 'node unreachable'})` : `${b.online} ${c}`}`,
          `offline: ${b.offline} ${c} in ${b.blocks.length} currency block(s)`,
          ...b.blocks.map((k) => `  block ${k.serial}  value ${k.value} ${c}  remaining ${k.remaining} ${c}  ${k.count} offline transaction(s)${k.held ? '  (held by an open offer)' : ''}`),
          ...(b.unsyncedEvents > 0 ? [`${b.unsyncedEvents} offline event(s) await the node (tally sync)`] : []),
          `payment password: ${b.passwordTriesLeft === 0 ? 'LOCKED' : `${b.passwordTriesLeft} tries left`}`,
          ...(b.pendingSteps > 0 ? [`unfinished steps: ${b.pendingSteps} (${resumed.waiting.map((w) => `${w.kind}: ${w.why}`).join('; ')})`] : []),
          ...endedLines(resumed.ended),
        ];
        return { text: lines.join('\n'), json: { name: wallet.name, scheme: 'dotm', currency: c, ...b, ...(resumed.ended.length === 0 ? {} : { ended: resumed.ended }) } };
      }, { password: pwd, optional: true });
    },
    async deposit(context) {
      const blocks = stringFlag(context, 'blocks');
      if (!/^[0-9]{1,2}$/.test(blocks ?? '1')) throw new UsageError(`--blocks: expected a number from 1 to 20, got ${JSON.stringify(blocks)}`);
      const count = blocks === undefined ? 1 : Number(blocks);
      const pwd = await password(context.io.env);
      return withDotm(context, async (wallet) => {
        const r = await wallet.deposit(positional(context, 0), count);
        return { text: `Deposited ${r.amount} ${wallet.currency.code} as ${r.blocks} currency block(s) signed by the central bank; offline balance ${r.offline} ${wallet.currency.code}.`, json: { name: wallet.name, currency: wallet.currency.code, ...r } };
      }, { password: pwd });
    },
    async withdraw(context) {
      const pwd = await password(context.io.env);
      return withDotm(context, async (wallet) => {
        const r = await wallet.withdraw(positional(context, 0), pwd);
        const c = wallet.currency.code;
        return {
          text:
            r.outcome === 'credited'
              ? `Withdrew ${r.amount} ${c} to the online account; online balance ${r.online ?? 'unknown'} ${c}.`
              : r.outcome === 'claimed'
                ? `Gave up ${r.amount} ${c} of currency blocks; copies of other banks' blocks among them were presented to those banks (${r.claims?.length ?? 0} claim(s)): the online account is credited once each is settled.`
              : r.outcome === 'refused'
                ? `Gave up ${r.amount} ${c} of currency blocks, but the node refused to credit them: ${r.refusal?.message ?? ''} [${r.refusal?.code ?? ''}].`
                : r.outcome === 'pending'
                  ? `Gave up ${r.amount} ${c} of currency blocks; the node has not taken the redemption yet: it is credited at a later sync (tally sync ${wallet.name}).`
                  : `Gave up ${r.amount} ${c} of currency blocks; the node is unreachable now: it credits them at the next sync (tally sync ${wallet.name}).`,
          json: { name: wallet.name, currency: c, ...r },
        };
      }, { password: pwd });
    },
    async recover(context) {
      // The wallet's payment password: it opens the account key, and the new secure element takes it.
      const pwd = await password(context.io.env);
      const wallet = await (await walletClass()).open(context.home, context.name, { password: pwd });
      try {
        const r = await wallet.recoverDevice(pwd, context.io.progress);
        const lines = [
          `Retired secure element ${r.retired} (kept in ${r.folder}); new secure element ${r.device}, offline balance 0.`,
          'What the node knows the retired one holds stays with it at the node; nothing was moved or created.',
          ...(r.setAside.steps + r.setAside.payments > 0 ? [`Set aside with it (see the history): ${r.setAside.steps} unfinished step(s), ${r.setAside.payments} received payment(s) not yet collected.`] : []),
        ];
        return { text: lines.join('\n'), json: { name: wallet.name, ...r } };
      } finally {
        await wallet.close();
      }
    },
    async sync(context) {
      const pwd = await password(context.io.env);
      return withDotm(context, async (wallet, recovered) => {
        const r = await wallet.sync();
        const refused = r.results.filter((x) => x.status === 'refused');
        const lines = [
          `Synced: ${r.uploaded} offline event(s) uploaded; revocation list version ${r.crlVersion}.`,
          ...(recovered.length > 0 ? [`Recovered after a crash: ${recovered.join(', ')}.`] : []),
          ...refused.map((x) => `event ${x.seq} refused: ${x.message ?? ''} [${x.code ?? ''}]`),
          ...(r.findings.length > 0 ? [`${r.findings.length} double-spending finding(s) at the node`] : []),
        ];
        return { text: lines.join('\n'), json: { name: wallet.name, scheme: 'dotm', currency: wallet.currency.code, recovered, ...r } };
      }, { password: pwd });
    },
    async receive(context) {
      const pwd = await password(context.io.env);
      const host = stringFlag(context, 'host') ?? '127.0.0.1';
      return withDotm(context, async (wallet) => {
        const r = await wallet.receive(positional(context, 0), {
          port: Number(context.values['listen']),
          host,
          timeoutMs: seconds(stringFlag(context, 'timeout')),
          onListening: (real) => context.io.announce(`Waiting for a payer on ${host}:${real} ...`, { event: 'listening', host, port: real }),
        });
        return { text: transferText(wallet, r, 'payee'), json: { name: wallet.name, scheme: 'dotm', currency: wallet.currency.code, ...r } };
      }, { password: pwd });
    },
    async pay(context) {
      const { host, port } = hostPort(stringFlag(context, 'connect') ?? '');
      const pwd = await password(context.io.env);
      const expect = stringFlag(context, 'expect');
      return withDotm(context, async (wallet) => {
        const r = await wallet.payTo(host, port, { password: pwd, ...(expect === undefined ? {} : { expect }), timeoutMs: seconds(stringFlag(context, 'timeout')) });
        return { text: transferText(wallet, r, 'payer'), json: { name: wallet.name, scheme: 'dotm', currency: wallet.currency.code, ...r } };
      }, { password: pwd });
    },
  },
  verbs: {
    'wallet unlock': {
      usage: 'tally wallet unlock NAME [--home DIR] [--json]',
      summary:
        "Account holder, online (DOT-M): opens a wallet its secure element locked after too many wrong payment passwords. The payment password (prompt, or $TALLY_PASSWORD) opens the account key; the node answers an unlock ticket that the secure element takes once.",
      options: [HOME_OPTION, JSON_OPTION],
      example: 'tally wallet unlock dave',
      capability: 'payment-password',
      positionals: [],
      flags: {},
      async run(context) {
        const pwd = await password(context.io.env);
        const wallet = await (await walletClass()).open(context.home, context.name, { password: pwd });
        try {
          const r = await wallet.unlockWallet(pwd);
          return { text: `Unlocked wallet ${wallet.name} (unlock ${r.unlocks}); ${r.triesLeft} payment password tries.`, json: { name: wallet.name, scheme: 'dotm', ...r } };
        } finally {
          await wallet.close();
        }
      },
    },
  },
  demo: async (context) => (await import('./cli-demo.ts')).dotmDemo(context),
  twoTierDemo: async (context) => (await import('./cli-demo-two-tier.ts')).dotmTwoTierDemo(context),
};
