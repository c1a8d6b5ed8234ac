/**
 * OTP's chapter of `tally demo --two-tier` (docs/otp.md, "Several banks"): coins Bank A signs
 * blindly, paid offline to a wallet of Bank B whose trusted app took A's publication; deposited at B,
 * presented to A through the central bank, judged in A's registry of its serials, settled between the
 * reserves and credited. Then a clone of A's wallet pays the same coins again at A, and A refuses
 * them as deposited before.
 */
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { isTallyError } from '../../core/errors.ts';
import type { TwoTierDemoContext } from '../../cli/plugin.ts';
import { OtpWallet } from './wallet.ts';

/** Tells OTP's payment across the two banks. */
export async function otpTwoTierDemo({ bankA, bankB, settle, reserves: reservesNow, say, missed, keep }: TwoTierDemoContext): Promise<void> {
  const create = async (home: string, name: string, url: string) => {
    const w = await OtpWallet.create({ home, name, node: url });
    keep(w);
    return w;
  };
  const alice = await create(bankA.home, 'otp-alice', bankA.node.url);
  const carol = await create(bankA.home, 'otp-carol', bankA.node.url);
  const bob = await create(bankB.home, 'otp-bob', bankB.node.url);
  const c = alice.currency.code;
  await bankA.mint(alice.snapshot().user.account, '50.00', 'two-tier-otp-mint-alice');
  const withdrawn = await alice.deposit('17.00');
  say(
    `OTP: alice and carol open wallets at Bank A, bob at Bank B, each a secure element attested by its bank's OEM. Bank A mints 50.00 ${c} to alice out of its reserve; she withdraws ${withdrawn.amount} ${c} as ${withdrawn.coins} coins of Bank A's classes, signed blindly: offline balance ${withdrawn.offline} ${c}.`,
    { step: 'otp-wallets', scheme: 'otp', currency: c, minted: '50.00', ...withdrawn },
  );

  // The banks publish their classes and keys at their syncs and take the other's; then the wallets sync.
  await settle();
  const synced = [];
  for (const w of [alice, carol, bob]) synced.push((await w.sync()).keys);
  say(
    `The banks sync: each publishes its OTP classes and keys, signed with its intermediary key, and takes the other's through the central bank. The wallets sync: each trusted app takes the other bank's publication, which it checks against the root it pinned, and bob's holds ${synced[2] ?? 0} one-time exchange keys signed by Bank B.`,
    { step: 'otp-sync', scheme: 'otp', keys: synced },
  );

  // A copy of alice's wallet made now holds the same coins: it pays them again further down.
  await alice.close();
  await cp(join(bankA.home, 'wallets', 'otp-alice'), join(bankA.home, 'wallets', 'otp-alice-clone'), { recursive: true });
  const payer = await OtpWallet.open(bankA.home, 'otp-alice');
  keep(payer);

  await bankA.stop();
  await bankB.stop();
  let paid;
  let received;
  try {
    ({ paid, received } = await pay(payer, bob, '7.00'));
  } finally {
    await bankA.start();
    await bankB.start();
  }
  say(
    `Both banks are stopped. bob asks 7.00 ${c}; alice's secure element pays ${paid.amount} ${c} in ${paid.coins} of Bank A's coins, each sealed to one of bob's exchange keys signed by Bank B; bob's trusted app checks them under Bank A's published classes: he holds ${received.offline} ${c} offline. The banks start again.`,
    { step: 'otp-pay', scheme: 'otp', amount: paid.amount, currency: c, coins: paid.coins, payer: paid.offline, payee: received.offline },
  );

  const reserves = await reservesNow();
  const back = await bob.withdraw('7.00');
  say(
    `bob deposits his ${back.coins} coins at Bank B: they are Bank A's, so Bank B credits nothing now (${back.credited} ${c}) and presents ${back.presented === back.coins ? 'them' : `${back.presented} of them`}, one claim each, through the central bank to Bank A, which keeps the registry of their serials.`,
    { step: 'otp-deposit', scheme: 'otp', currency: c, ...back },
  );
  if (back.presented !== back.coins) missed("Bank B did not present Bank A's coins");

  const audit = await settle();
  const after = await reservesNow();
  const bobOnline = (await bob.balance()).online;
  say(
    `The banks sync: Bank A finds each serial not yet in its registry, records it and accepts its claim; the central bank moves 7.00 ${c} from Bank A's reserve (${reserves.a} → ${after.a} ${c}) to Bank B's (${reserves.b} → ${after.b} ${c}); Bank B credits bob: online ${bobOnline ?? '?'} ${c}. The system's audit: ${audit['balanced'] === true ? 'balanced' : 'NOT balanced'}.`,
    { step: 'otp-settle', scheme: 'otp', currency: c, reserves: { before: reserves, after }, bob: bobOnline, balanced: audit['balanced'] },
  );
  if (audit['balanced'] !== true) missed('the system audit did not balance after the OTP claims');

  // The clone pays carol at A with the coins alice already paid to bob.
  const clone = await OtpWallet.open(bankA.home, 'otp-alice-clone');
  keep(clone);
  await pay(clone, carol, '7.00');
  let code = 'none';
  try {
    await carol.withdraw('7.00');
  } catch (e) {
    code = isTallyError(e) ? e.code : String(e);
  }
  const carolOnline = (await carol.balance()).online;
  say(
    `A copy of alice's wallet, made before she paid, pays carol (Bank A) 7.00 ${c} with the same coins; carol deposits them at Bank A, whose registry holds their serials already: the deposit is refused (${code}) and nothing is credited (online ${carolOnline ?? '?'} ${c}).`,
    { step: 'otp-double-spend', scheme: 'otp', currency: c, code, online: carolOnline },
  );
  if (code !== 'DOUBLE_SPEND' || carolOnline !== '0.00') missed('Bank A credited coins it had already paid');
}

/** A payment over TCP + Noise on loopback: the payee listens, the payer connects. */
async function pay(payer: OtpWallet, payee: OtpWallet, amount: string) {
  let port = 0;
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const receiving = payee.receive(amount, { port: 0, host: '127.0.0.1', timeoutMs: 30_000, onListening: (p) => { port = p; listening(); } });
  receiving.catch(() => undefined);
  await Promise.race([ready, receiving]);
  const paid = await payer.pay('127.0.0.1', port, amount, { timeoutMs: 30_000 });
  return { paid, received: await receiving };
}
