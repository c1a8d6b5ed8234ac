/**
 * OPS's part of the `tally` command: the shell's wallet verbs for OPS wallets, and the verbs of
 * OPS alone, its offline payments as text tokens: `request` (the payee's signed request), `pay
 * NAME REQUEST`, `accept`, `collect` (into the payee's secure element) and `claim` (online, for a
 * wallet without one).
 */
import { endedLines, HOME_OPTION, hostPort, JSON_OPTION, prestartSecureElement, seconds, UsageError, positional, stringFlag, type CliPart, type Outcome, type WalletVerbContext } from '../../cli/plugin.ts';
import type { InboxEntry, Wallet } from './wallet.ts';

/** The wallet class, loaded when a verb runs (listing the verbs loads no wallet code). */
async function walletClass(): Promise<typeof Wallet> {
  return (await import('./wallet.ts')).Wallet;
}

/** Opens the OPS wallet of a verb, runs, closes. */
async function withWallet<T>(context: WalletVerbContext, run: (wallet: Wallet) => Promise<T>): Promise<T> {
  const wallet = await (await walletClass()).open(context.home, context.name);
  try {
    return await run(wallet);
  } finally {
    await wallet.close();
  }
}

/** The OPS trusted app's module, as the wallet names it to its secure element (wallet-base.ts). */
const OPS_TA_MODULE = new URL('./trusted-app.ts', import.meta.url).href;

/** withWallet for a verb that runs the secure element: its process starts while the wallet loads. */
async function withWalletAndSe<T>(context: WalletVerbContext, run: (wallet: Wallet) => Promise<T>): Promise<T> {
  await prestartSecureElement(OPS_TA_MODULE);
  return withWallet(context, run);
}

function shortEntry(wallet: Wallet, e: InboxEntry) {
  return { amount: e.credited ?? wallet.format(BigInt(e.amount)), sender: e.sender, index: e.index, state: e.state, ...(e.reason === undefined ? {} : { reason: e.reason }), ...(e.waiting === undefined ? {} : { waiting: e.waiting }) };
}

/** OPS's CLI part. */
export const opsCli: CliPart = {
  notes: {
    recover: 'OPS: the node revokes the old device and holds what it knows the old one held for its payments that still surface; the rest comes to the online account after the hold.',
    pay: 'OPS: a REQUEST token (from `tally request`) is paid by the secure element and the payment token printed; give it to the payee for `tally accept`.',
    receive: 'OPS: the payment is stored like an accepted one: `tally collect` it (or `tally claim` it without a secure element).',
  },
  flags: {
    create: { options: { 'no-secure-element': { type: 'boolean', default: false } }, help: [['--no-secure-element', 'OPS: a wallet without a secure element; it receives payments and claims them online; its account key is sealed under a wallet passphrase (prompt, or $TALLY_WALLET_PASSPHRASE)']] },
    pay: {
      options: { payee: { type: 'string' }, again: { type: 'boolean', default: false } },
      help: [
        ['--payee KEYID', 'OPS, with a REQUEST token: refuse a token signed by another user (the full key id or its first 8+ hex digits)'],
        ['--again', 'OPS, with a REQUEST token: pay a request token that was paid once already'],
      ],
    },
    receive: { options: { memo: { type: 'string' } }, help: [['--memo TEXT', 'OPS: a note carried in the request']] },
  },
  handlers: {
    async create({ home, name, values, io }) {
      const node = stringFlag({ home, name, values, io, args: [] }, 'node') ?? '';
      const wallet = await (await walletClass()).create({ home, name, node, secureElement: values['no-secure-element'] !== true, progress: io.progress });
      try {
        const data = wallet.snapshot();
        return {
          text: `Created wallet ${data.name} (${data.device === null ? 'no secure element: receives and claims' : `secure element ${data.device.keyId}`}), account ${data.user.account}, at ${data.node}.`,
          json: { name: data.name, scheme: data.scheme, home, node: data.node, account: data.user.account, user: data.user.keyId, device: data.device?.keyId ?? null },
        };
      } finally {
        await wallet.close();
      }
    },
    // No SE prestarted: the offline figures are usually the SE's last report, and the online one
    // opens the account key (from the SE) only when the node takes a connection.
    balance: (context) =>
      withWallet(context, async (wallet) => {
        const resumed = await wallet.resume();
        const b = await wallet.balance();
        const c = wallet.currency.code;
        const lines = [
          `online:  ${b.online === null ? `unknown (${b.onlineError ?? 'node unreachable'})` : `${b.online} ${c}`}`,
          ...(b.offline === null ? [] : [`offline: ${b.offline} ${c} (holding limit ${b.holdingLimit} ${c}, ${b.offlinePaymentsLeft} offline payments left before a sync${b.offlineAsOf === undefined ? '' : `; as the secure element reported when it last ran, ${b.offlineAsOf}`})`]),
          `incoming: ${b.incoming} ${c} accepted, not yet ${wallet.hasSecureElement ? 'collected' : 'claimed'}`,
          ...(b.pendingSteps > 0 ? [`unfinished steps: ${b.pendingSteps} (${resumed.waiting.map((w) => `${w.kind}: ${w.why}`).join('; ')})`] : []),
          ...endedLines(resumed.ended),
        ];
        return { text: lines.join('\n'), json: { name: wallet.name, currency: c, ...b, ...(resumed.ended.length === 0 ? {} : { ended: resumed.ended }) } };
      }),
    deposit: (context) =>
      withWalletAndSe(context, async (wallet) => {
        const r = await wallet.deposit(positional(context, 0));
        return { text: `Deposited ${r.amount} ${wallet.currency.code} into the secure element; offline balance ${r.offline} ${wallet.currency.code}.`, json: { name: wallet.name, currency: wallet.currency.code, ...r } };
      }),
    withdraw: (context) =>
      withWalletAndSe(context, async (wallet) => {
        const r = await wallet.withdraw(positional(context, 0));
        return { text: `Withdrew ${r.amount} ${wallet.currency.code} to the online account; online balance ${r.online ?? 'unknown'} ${wallet.currency.code}.`, json: { name: wallet.name, currency: wallet.currency.code, ...r } };
      }),
    recover: (context) =>
      withWallet(context, async (wallet) => {
        const r = await wallet.recoverDevice(context.io.progress);
        const c = wallet.currency.code;
        const lines = [
          `Retired secure element ${r.retired} (kept in ${r.folder}); new secure element ${r.device}, offline balance 0.`,
          `The node revoked the old device and holds ${r.escrow} ${c}, what it knows the old one held, for its payments that still surface; the rest comes to your online account at a sync from ${r.releaseAt}.`,
          ...(r.setAside.steps + r.setAside.payments > 0 ? [`Set aside with it (see the history): ${r.setAside.steps} unfinished step(s), ${r.setAside.payments} received payment(s) not yet collected.`] : []),
        ];
        return { text: lines.join('\n'), json: { name: wallet.name, ...r } };
      }),
    sync: (context) =>
      withWalletAndSe(context, async (wallet) => {
        const r = await wallet.sync();
        const fraud = r.fraud.map((f) => `fraud case: ${f.kind} by device ${f.device}`);
        const retried = r.retried === undefined ? [] : [`Payments that waited for this sync: ${r.retried.collected} collected, ${r.retried.waiting} still waiting, ${r.retried.refused} refused.`];
        const c = wallet.currency.code;
        const foreign = (r.foreign ?? []).map((f) =>
          f.claim === undefined
            ? `Collected ${f.amount} ${c} from ${f.sender} (payment ${f.index}), a device of another bank; your bank could not present it: ${f.message ?? ''} [${f.code ?? ''}]`
            : `Collected ${f.amount} ${c} from ${f.sender} (payment ${f.index}), a device of bank ${f.claim.payerBank}: presented as claim ${f.claim.claimId} (${f.claim.status}).`,
        );
        const peers =
          r.peers !== undefined
            ? [`Other banks: ${r.peers.peers} intermediary certificate(s) and ${r.peers.crls} list(s) of revoked devices held${r.peers.rootCrlVersion === undefined ? '' : `; the central bank's list of revoked banks, version ${r.peers.rootCrlVersion}`}.`]
            : r.peersError !== undefined
              ? [`What your bank says of the other banks was not taken: ${r.peersError}`]
              : [];
        return { text: [`Synced; revocation list version ${r.crlVersion}.`, ...endedLines(r.ended ?? []), ...fraud, ...retried, ...foreign, ...peers].join('\n'), json: { name: wallet.name, currency: c, ...r } };
      }),
    receive: (context) =>
      withWalletAndSe(context, async (wallet) => {
        const { values, io } = context;
        const host = stringFlag(context, 'host') ?? '127.0.0.1';
        const memo = stringFlag(context, 'memo');
        const e = await wallet.receive(positional(context, 0), {
          port: Number(values['listen']),
          host,
          timeoutMs: seconds(stringFlag(context, 'timeout')),
          ...(memo === undefined ? {} : { memo }),
          onListening: (real) => io.announce(`Waiting for a payer on ${host}:${real} ...`, { event: 'listening', host, port: real }),
        });
        const amount = wallet.format(BigInt(e.amount));
        return { text: `Received ${amount} ${wallet.currency.code} from device ${e.sender} (payment ${e.index}).`, json: { name: wallet.name, currency: wallet.currency.code, ...shortEntry(wallet, e) } };
      }),
    pay: (context) =>
      withWalletAndSe(context, async (wallet): Promise<Outcome> => {
        const token = context.args[0];
        const payee = stringFlag(context, 'payee');
        if (token !== undefined) {
          const r = await wallet.pay(token, { again: context.values['again'] === true, ...(payee === undefined ? {} : { payee }) });
          const amount = wallet.format(r.payment.amount);
          const who = `${r.payee.name === undefined ? 'user' : JSON.stringify(r.payee.name)} ${r.payee.keyId}${r.payee.receiverRole === 'device' ? ` (its device ${r.payee.receiver})` : ''}`;
          // Whom it paid goes to stderr, so that `PAY=$(tally pay ...)` still captures the token alone.
          context.io.progress(`Paying ${amount} ${wallet.currency.code} to ${who}, who signed the request: payment ${r.entry.index}, hand the payee the token below`);
          return {
            text: r.token,
            json: { name: wallet.name, amount, currency: wallet.currency.code, index: r.entry.index, receiver: r.entry.receiver, payee: r.payee, token: r.token },
          };
        }
        if (context.values['again'] === true || payee !== undefined) throw new UsageError('--again and --payee are for a REQUEST token');
        const { host, port } = hostPort(stringFlag(context, 'connect') ?? '');
        const expect = stringFlag(context, 'expect');
        const r = await wallet.payTo(host, port, { ...(expect === undefined ? {} : { expect }), timeoutMs: seconds(stringFlag(context, 'timeout')) });
        const amount = wallet.format(r.payment.amount);
        return {
          text: r.confirmed
            ? `Paid ${amount} ${wallet.currency.code} over the link; the payee confirmed.`
            : `Paid ${amount} ${wallet.currency.code}, but the payee did not confirm (${r.error ?? 'no receipt'}). The payment is kept; hand it over as this token:\n${r.token}`,
          json: { name: wallet.name, amount, currency: wallet.currency.code, index: r.payment.index.toString(), confirmed: r.confirmed, token: r.token, ...(r.error === undefined ? {} : { error: r.error }) },
        };
      }),
  },
  verbs: {
    request: {
      usage: 'tally request NAME AMOUNT [--memo TEXT] [--home DIR] [--json]',
      summary: 'Payee, offline (OPS): prints a payment request token for AMOUNT naming this wallet; give it to the payer for `tally pay`.',
      options: [['--memo TEXT', 'a note carried in the request'], HOME_OPTION, JSON_OPTION],
      example: 'REQ=$(tally request bob 12.50 --memo beans)',
      capability: 'token-payments',
      positionals: ['AMOUNT'],
      flags: { memo: { type: 'string' } },
      secureElement: true,
      run: (context) =>
        withWalletAndSe(context, async (wallet) => {
          const { token, request } = await wallet.request(positional(context, 0), stringFlag(context, 'memo'));
          return { text: token, json: { name: wallet.name, amount: wallet.format(request.amount), currency: wallet.currency.code, token } };
        }),
    },
    accept: {
      usage: 'tally accept NAME PAYMENT [--home DIR] [--json]',
      summary: 'Payee, offline (OPS): verifies a payment token (certificates, revocations, signature, replay) and stores it; then `tally collect` (with a secure element) or `tally claim` (without one).',
      options: [HOME_OPTION, JSON_OPTION],
      example: 'tally accept bob "$PAY" && tally collect bob',
      capability: 'token-payments',
      positionals: ['PAYMENT'],
      flags: {},
      run: (context) =>
        withWallet(context, async (wallet) => {
          const e = await wallet.accept(positional(context, 0));
          const amount = wallet.format(BigInt(e.amount));
          return { text: `Accepted ${amount} ${wallet.currency.code} from device ${e.sender} (payment ${e.index}); ${wallet.hasSecureElement ? 'collect it' : 'claim it when online'}.`, json: { name: wallet.name, currency: wallet.currency.code, ...shortEntry(wallet, e) } };
        }),
    },
    collect: {
      usage: 'tally collect NAME [--home DIR] [--json]',
      summary: 'Payee, offline (OPS, with a secure element): moves the accepted and received payments into the secure element, so they can be spent again.',
      options: [HOME_OPTION, JSON_OPTION],
      example: 'tally collect bob',
      capability: 'collect',
      positionals: [],
      flags: {},
      secureElement: true,
      run: (context) =>
        withWalletAndSe(context, async (wallet) => {
          const resumed = await wallet.resume();
          const r = await wallet.collect();
          const sum = r.collected.reduce((s, e) => s + BigInt(e.amount), 0n);
          const text = [
            ...endedLines(resumed.ended),
            `Collected ${r.collected.length} payment(s), ${wallet.format(sum)} ${wallet.currency.code}; offline balance ${r.offline} ${wallet.currency.code}.`,
            ...r.refused.map((e) => `Refused by the secure element: ${wallet.format(BigInt(e.amount))} ${wallet.currency.code} from ${e.sender} (payment ${e.index}): ${e.reason ?? ''}`),
            ...r.waiting.map((e) => `Waiting: ${wallet.format(BigInt(e.amount))} ${wallet.currency.code} from ${e.sender} (payment ${e.index}) cannot go in yet (${e.waiting ?? ''}); it is kept and tried again after the next sync.`),
          ].join('\n');
          return {
            text,
            json: { name: wallet.name, currency: wallet.currency.code, collected: r.collected.map((e) => shortEntry(wallet, e)), refused: r.refused.map((e) => shortEntry(wallet, e)), waiting: r.waiting.map((e) => shortEntry(wallet, e)), offline: r.offline },
          };
        }),
    },
    claim: {
      usage: 'tally claim NAME [--home DIR] [--json]',
      summary: "Payee without a secure element (OPS): has the node credit the accepted payments to the online account; a payment from another bank's device is presented to that bank and credited once settled (claim again to see where it stands); needs the node.",
      options: [HOME_OPTION, JSON_OPTION],
      example: 'tally claim carol',
      capability: 'claim',
      positionals: [],
      flags: {},
      run: (context) =>
        withWalletAndSe(context, async (wallet) => {
          const r = await wallet.claim();
          // What the node credited, from its answer.
          const sum = r.claimed.reduce((s, e) => s + (e.credited === undefined ? BigInt(e.amount) : wallet.parseCredited(e.credited)), 0n);
          const c = wallet.currency.code;
          const text = [
            `Claimed ${r.claimed.length} payment(s), the node credited ${wallet.format(sum)} ${c}; online balance ${r.online ?? 'unknown'} ${c}.`,
            ...r.presented.map((e) => `Waiting: ${e.claimState.amount} ${c} from ${e.sender} (payment ${e.index}), a device of bank ${e.claimState.payerBank}: claim ${e.claimState.claimId} is ${e.claimState.status}; credited once that bank settles it (claim again to see).`),
            ...r.refused.map((e) => `Refused by the node: ${wallet.format(BigInt(e.amount))} ${c} from ${e.sender} (payment ${e.index}): ${e.reason ?? ''}`),
          ].join('\n');
          const presented = r.presented.map((e) => ({ ...shortEntry(wallet, e), claim: { claimId: e.claimState.claimId, payerBank: e.claimState.payerBank, status: e.claimState.status } }));
          return { text, json: { name: wallet.name, currency: c, claimed: r.claimed.map((e) => shortEntry(wallet, e)), presented, refused: r.refused.map((e) => shortEntry(wallet, e)), online: r.online } };
        }),
    },
  },
  demo: async (context) => (await import('./cli-demo.ts')).opsDemo(context),
  twoTierDemo: async (context) => (await import('./cli-demo-two-tier.ts')).opsTwoTierDemo(context),
};
