/**
 * OPERA's chapter of `tally demo --two-tier`: an ODW of a customer of bank A charged with A's
 * tokens, an ODW of a customer of bank B given A's parameters at its sync, an offline payment
 * between them with both banks stopped, the deposit at B presenting A's tokens as claims, a copy of
 * the payee's wallet refused when it deposits the same tokens, the claims settled through the
 * central bank (the reserves before and after), and the system's audit (docs/opera.md, "Several banks").
 */
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import type { TwoTierDemoContext } from '../../cli/plugin.ts';
import { isTallyError } from '../../core/errors.ts';
import { OperaWallet } from './wallet.ts';

type Answer = Record<string, unknown>;

/** A bank's reserve at the central bank, from the system's audit. */
function reserveOf(audit: Answer, keyId: string): string {
  const line = (audit['intermediaries'] as Answer[] | undefined)?.find((i) => i['keyId'] === keyId);
  return String(line?.['reserve'] ?? '?');
}

/** Tells OPERA's part of the two-tier demo. */
export async function operaTwoTierDemo({ bankA, bankB, say, aside, missed, keep, settle }: TwoTierDemoContext): Promise<void> {
  let alice: OperaWallet;
  try {
    alice = await OperaWallet.create({ home: bankA.home, name: 'olga', node: bankA.node.url });
  } catch (e) {
    if (!isTallyError(e, 'TPM_TOOL_MISSING')) throw e;
    aside(`OPERA is left out: its wallets need a TPM simulator (swtpm) for the credential (${e.message}).`, { step: 'opera-skipped', code: e.code });
    return;
  }
  keep(alice);
  let bob = await OperaWallet.create({ home: bankB.home, name: 'pavel', node: bankB.node.url });
  const c = alice.currency.code;
  say(`OPERA wallets: olga at ${bankA.name} and pavel at ${bankB.name}, each an ODW attested by its own bank's OEM, holding that OEM's anonymous credential after a TPM quote of its build.`, { step: 'opera-wallets', olga: alice.snapshot().device?.keyId, pavel: bob.snapshot().device?.keyId });

  await bankA.mint(alice.snapshot().user.account, '50.00', 'demo-two-tier-opera-mint');
  const charged = await alice.deposit('35.00');
  say(`${bankA.name} mints 50.00 ${c} to olga from its reserve; she has ${charged.amount} ${c} of it charged into her ODW as ${charged.tokens} tokens signed by ${bankA.name}'s issuer node: offline balance ${charged.offline} ${c}.`, { step: 'opera-charge', currency: c, ...charged });

  // Each bank publishes its OPERA parameters at its sync and keeps the other's at the next.
  await settle();
  await alice.sync();
  await bob.sync();
  const peers = await bob.refreshPeers();
  say(`The banks publish their issuer nodes and OPERA parameters through the central bank; pavel's sync gives his ODW the parameters of ${peers === 1 ? 'the other bank' : `${peers} other banks`}, which it checks to the root: it now takes ${bankA.name}'s tokens.`, { step: 'opera-sync', peers });

  await bankA.stop();
  await bankB.stop();
  let port = 0;
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const receiving = bob.receive('15.00', { port: 0, host: '127.0.0.1', timeoutMs: 30_000, onListening: (p) => { port = p; listening(); } });
  receiving.catch(() => undefined);
  await Promise.race([ready, receiving]);
  const paid = await alice.pay('15.00', '127.0.0.1', port, { timeoutMs: 30_000 });
  const received = await receiving;
  say(`Both banks stopped: pavel asks 15.00 ${c}; the two ODWs prove to each other that they are genuine without saying who they are, and olga's ODW pays ${paid.amount} ${c} in ${paid.tokens} of ${bankA.name}'s tokens, sealed until her Stage 3 key arrives. olga holds ${paid.offline} ${c} offline, pavel ${received.offline} ${c}.`, { step: 'opera-pay', currency: c, amount: paid.amount, tokens: paid.tokens, payer: paid.offline, payee: received.offline });
  await bankA.start();
  await bankB.start();

  // A copy of pavel's wallet folder, its sealed state and counter with it, holds the same tokens.
  await bob.close();
  const copyName = 'pavel-copy';
  await cp(join(bankB.home, 'wallets', 'pavel'), join(bankB.home, 'wallets', copyName), { recursive: true });
  bob = await OperaWallet.open(bankB.home, 'pavel');
  keep(bob);
  const copy = await OperaWallet.open(bankB.home, copyName);
  keep(copy);

  const before = await settle();
  const deposited = await bob.withdraw('15.00');
  say(`pavel deposits at ${bankB.name}: it records the serials and presents each of ${bankA.name}'s ${deposited.presented} tokens to ${bankA.name} as a claim; credited for now: ${deposited.credited} ${c}.`, { step: 'opera-deposit', currency: c, ...deposited });
  if (deposited.presented !== 2) missed(`${bankB.name} presented ${deposited.presented} tokens instead of 2`);
  try {
    await copy.withdraw('15.00');
    missed(`${bankB.name} took a copy of tokens already deposited`);
  } catch (e) {
    const code = isTallyError(e) ? e.code : String(e);
    if (code !== 'DOUBLE_SPEND') throw e;
    aside(`A copy of pavel's wallet folder deposits the same two tokens: ${bankB.name} refuses them on the spot, nothing credited (${code}).`, { step: 'opera-copy-refused', code });
  }

  const after = await settle();
  const online = (await bob.balance()).online;
  say(`The banks sync: ${bankA.name} judges each claim with its own double-deposit check and accepts; the central bank moves 15.00 ${c} from ${bankA.name}'s reserve (${reserveOf(before, bankA.keyId)} to ${reserveOf(after, bankA.keyId)} ${c}) to ${bankB.name}'s (${reserveOf(before, bankB.keyId)} to ${reserveOf(after, bankB.keyId)} ${c}); ${bankB.name} credits pavel: online balance ${online ?? '?'} ${c}.`, {
    step: 'opera-settled',
    currency: c,
    online,
    reserves: { before: { a: reserveOf(before, bankA.keyId), b: reserveOf(before, bankB.keyId) }, after: { a: reserveOf(after, bankA.keyId), b: reserveOf(after, bankB.keyId) } },
  });
  if (online !== '15.00') missed(`pavel's account shows ${online ?? 'nothing'} instead of 15.00 ${c}`);
  aside(`The system's audit after OPERA's payment: ${after['balanced'] === true ? 'balanced' : 'NOT balanced'}; issued ${String(after['issued'])} ${c} = reserves ${String(after['reserves'])} ${c}.`, { step: 'opera-audit', balanced: after['balanced'], issued: after['issued'], reserves: after['reserves'] });
  if (after['balanced'] !== true) missed("the system's audit did not balance");
}
