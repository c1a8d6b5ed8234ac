/**
 * DOT-M's chapter of `tally demo --two-tier` (docs/dotm.md, "Several operators"): a wallet of Bank A
 * holding blocks A signed with its intermediary key pays a wallet of Bank B offline; B's customer
 * redeems at B, B presents the copy to A through the central bank, A judges it with its tree of the
 * serial, the reserves move and B credits. Then a clone of A's wallet spends the same blocks again
 * at A, and A refuses that redemption as a double spend.
 */
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import type { TwoTierDemoContext } from '../../cli/plugin.ts';
import { NodeClient } from '../../wallet/plugin.ts';
import { DotmWallet } from './wallet.ts';

/** The payment password of the chapter's wallets. */
const PASSWORD = 'two-tier demo payment password';

/** Tells DOT-M's payment across the two banks. */
export async function dotmTwoTierDemo({ bankA, bankB, settle, reserves: reservesNow, say, missed, keep }: TwoTierDemoContext): Promise<void> {
  const create = async (home: string, name: string, url: string) => {
    const w = await DotmWallet.create({ home, name, node: url, password: PASSWORD });
    keep(w);
    return w;
  };
  const alice = await create(bankA.home, 'dotm-alice', bankA.node.url);
  const carol = await create(bankA.home, 'dotm-carol', bankA.node.url);
  const bob = await create(bankB.home, 'dotm-bob', bankB.node.url);
  const c = alice.currency.code;
  await bankA.mint(alice.snapshot().user.account, '50.00', 'two-tier-dotm-mint-alice');
  const blocks = await alice.deposit('30.00', 3);
  say(
    `DOT-M: alice and carol open wallets at Bank A, bob at Bank B, each certified by its own bank. Bank A mints 50.00 ${c} to alice out of its reserve; she deposits ${blocks.amount} ${c} as ${blocks.blocks} currency blocks that Bank A signs with its own intermediary key (not the root key): offline balance ${blocks.offline} ${c}.`,
    { step: 'dotm-wallets', scheme: 'dotm', currency: c, minted: '50.00', ...blocks },
  );

  const peers = [];
  for (const w of [alice, carol, bob]) {
    await w.sync();
    peers.push((await w.balance()).offline);
  }
  say("The three wallets sync: each secure element takes from its own bank the other bank's intermediary certificate, which it checks against the root it pinned; bob's can now verify blocks signed by Bank A.", { step: 'dotm-sync', scheme: 'dotm' });

  // A copy of alice's wallet made now holds the same blocks: it spends them again further down.
  await alice.close();
  await cp(join(bankA.home, 'wallets', 'dotm-alice'), join(bankA.home, 'wallets', 'dotm-alice-clone'), { recursive: true });
  const payer = await DotmWallet.open(bankA.home, 'dotm-alice', { password: PASSWORD });
  keep(payer);
  await payer.unlockAccount(PASSWORD);

  await bankA.stop();
  await bankB.stop();
  let paid;
  let received;
  try {
    ({ paid, received } = await pay(payer, bob, '10.00'));
  } finally {
    await bankA.start();
    await bankB.start();
  }
  say(
    `Both banks are stopped. bob asks 10.00 ${c}; alice pays him ${paid.amount} ${c} offline in the nine steps over TCP + Noise, out of ${plural(paid.blocks, 'block')} signed by Bank A; bob's secure element verifies Bank A's signature under its certificate: his transaction ${received.status}. The banks start again.`,
    { step: 'dotm-pay', scheme: 'dotm', amount: paid.amount, currency: c, blocks: paid.blocks, payer: paid.status, payee: received.status },
  );

  await payer.sync();
  const reserves = await reservesNow();
  const redeemed = await bob.withdraw('10.00', PASSWORD);
  say(
    `alice syncs her payment to Bank A. bob withdraws ${redeemed.amount} ${c} at Bank B: Bank A signed what he holds, so Bank B credits nothing yet (outcome ${redeemed.outcome}, online ${redeemed.online ?? '?'} ${c}) and presents his copy to Bank A through the central bank as ${plural(redeemed.claims?.length ?? 0, 'claim')}.`,
    { step: 'dotm-redeem', scheme: 'dotm', currency: c, ...redeemed },
  );
  if (redeemed.outcome !== 'claimed') missed('Bank B did not present the copy of a block of Bank A');

  const audit = await settle();
  const after = await reservesNow();
  const bobOnline = (await bob.balance()).online;
  say(
    `The banks sync: Bank A judges the claim with its tree of the block's serial (paid once, by alice to bob) and accepts it; the central bank moves ${redeemed.amount} ${c} from Bank A's reserve (${reserves.a} → ${after.a} ${c}) to Bank B's (${reserves.b} → ${after.b} ${c}); Bank B credits bob: online ${bobOnline ?? '?'} ${c}. The system's audit: ${audit['balanced'] === true ? 'balanced' : 'NOT balanced'}.`,
    { step: 'dotm-settle', scheme: 'dotm', currency: c, reserves: { before: reserves, after }, bob: bobOnline, balanced: audit['balanced'] },
  );
  if (audit['balanced'] !== true) missed('the system audit did not balance after the DOT-M claim');

  // The clone pays carol at A with the blocks alice already paid to bob.
  const clone = await DotmWallet.open(bankA.home, 'dotm-alice-clone', { password: PASSWORD });
  keep(clone);
  await clone.unlockAccount(PASSWORD);
  await pay(clone, carol, '10.00');
  const refused = await carol.withdraw('10.00', PASSWORD);
  const carolOnline = (await carol.balance()).online;
  const aliceWallet = payer.snapshot().slot?.wallet ?? '';
  const status = (await new NodeClient(bankA.node.url).operator(bankA.node.operatorToken, 'GET', `/v1/dotm/wallets/${aliceWallet}`, {})).body as { revoked?: boolean };
  say(
    `A copy of alice's wallet, made before she paid, pays carol (Bank A) 10.00 ${c} out of the same block; carol withdraws at Bank A, whose tree of the serial now holds two payments of the whole block by alice: her redemption is ${refused.outcome} (${refused.refusal?.code ?? 'no code'}), nothing is credited (online ${carolOnline ?? '?'} ${c}), and Bank A names alice as the double spender and ${status.revoked === true ? 'revokes' : 'does NOT revoke'} her wallet.`,
    { step: 'dotm-double-spend', scheme: 'dotm', currency: c, outcome: refused.outcome, code: refused.refusal?.code, online: carolOnline, revoked: status.revoked },
  );
  if (refused.outcome !== 'refused' || refused.refusal?.code !== 'DOUBLE_SPEND' || carolOnline !== '0.00') missed('Bank A credited a copy of a block it had already paid');
  if (status.revoked !== true) missed("Bank A did not revoke the double spender's wallet");
}

/** `n` things, as a sentence says it. */
function plural(n: number, thing: string): string {
  return `${n} ${thing}${n === 1 ? '' : 's'}`;
}

/** A payment over TCP + Noise on loopback: the payee listens, the payer connects. */
async function pay(payer: DotmWallet, payee: DotmWallet, amount: string) {
  let port = 0;
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const receiving = payee.receive(amount, { port: 0, host: '127.0.0.1', timeoutMs: 30_000, onListening: (p) => { port = p; listening(); } });
  receiving.catch(() => undefined);
  await Promise.race([ready, receiving]);
  const paid = await payer.payTo('127.0.0.1', port, { password: PASSWORD, expect: amount, timeoutMs: 30_000 });
  return { paid, received: await receiving };
}
