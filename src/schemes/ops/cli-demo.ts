/**
 * OPS's chapter of `tally demo`: wallets with and without a secure element, a deposit, a payment by
 * request and payment tokens with its replay refused, a payment over TCP + Noise re-spending what
 * was received, a claim, syncs and a withdrawal.
 */
import { isTallyError } from '../../core/errors.ts';
import type { DemoContext } from '../../cli/plugin.ts';
import { Wallet } from './wallet.ts';

/** Tells OPS's part of the demo. */
export async function opsDemo({ home, node, mint, say, aside, missed, keep }: DemoContext): Promise<void> {
  const create = async (name: string, secureElement: boolean) => {
    // The demo's own home is thrown away after it: a wallet without a secure element gets a fixed passphrase.
    const w = await Wallet.create({ home, name, node: node.url, secureElement, passphrase: { env: { TALLY_WALLET_PASSPHRASE: `demo passphrase of ${name}` }, isTTY: false } });
    keep(w);
    return w;
  };
  const alice = await create('alice', true);
  const bob = await create('bob', true);
  const carol = await create('carol', false);
  const c = alice.currency.code;
  say('OPS wallets: alice and bob each get an isolated secure element (attested by the OEM, certified by the node); carol has none.', {
    step: 'wallets',
    scheme: 'ops',
    alice: alice.snapshot().device?.keyId,
    bob: bob.snapshot().device?.keyId,
    carol: carol.snapshot().user.account,
  });

  await mint(alice.snapshot().user.account, '100.00', 'demo-mint');
  say(`The central bank mints 100.00 ${c} into alice's online account.`, { step: 'mint', scheme: 'ops', amount: '100.00', currency: c });

  const dep = await alice.deposit('60.00');
  say(`alice deposits ${dep.amount} ${c} into her secure element (Figure 5): offline balance ${dep.offline} ${c}.`, { step: 'deposit', scheme: 'ops', currency: c, ...dep });

  const { token: requestToken } = await bob.request('12.50', 'coffee beans');
  say(`bob, offline, asks for 12.50 ${c} with a request token:\n${requestToken.slice(0, 60)}...`, { step: 'request', token: requestToken });
  const paid = await alice.pay(requestToken);
  say(`alice's TA pays it (Figure 7) and she hands over the payment token:\n${paid.token.slice(0, 60)}...`, { step: 'pay', index: paid.entry.index, token: paid.token });
  const accepted = await bob.accept(paid.token);
  say(`bob verifies it offline (PayVerify, Figure 8) and stores it: ${bob.format(BigInt(accepted.amount))} ${c} from device ${accepted.sender.slice(0, 16)}...`, { step: 'accept', amount: bob.format(BigInt(accepted.amount)), currency: c });
  try {
    await bob.accept(paid.token);
    aside('(the replay was accepted: this must not happen)', { step: 'replay', refused: false });
    missed('the replayed payment token was accepted');
  } catch (e) {
    aside(`The same token shown again is refused: ${isTallyError(e) ? e.code : String(e)}.`, { step: 'replay', refused: true, code: isTallyError(e) ? e.code : String(e) });
  }
  const collected = await bob.collect();
  say(`bob collects it into his secure element: offline balance ${collected.offline} ${c}.`, { step: 'collect', offline: collected.offline, currency: c });

  let port = 0;
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const receiving = carol.receive('5.00', { port: 0, host: '127.0.0.1', timeoutMs: 30_000, memo: 'bread', onListening: (p) => { port = p; listening(); } });
  receiving.catch(() => undefined);
  await Promise.race([ready, receiving]);
  const overLink = await bob.payTo('127.0.0.1', port, { expect: '5.00', timeoutMs: 30_000 });
  const entry = await receiving;
  say(`carol, listening on TCP, received ${carol.format(BigInt(entry.amount))} ${c} from bob over a Noise session bound to both certificates.`, { step: 'receive', amount: carol.format(BigInt(entry.amount)), currency: c });
  say(`bob re-spent offline what alice paid him (offline transitivity): paid ${bob.format(overLink.payment.amount)} ${c} to carol, confirmed: ${overLink.confirmed}.`, { step: 'pay-link', confirmed: overLink.confirmed });

  const claimed = await carol.claim();
  say(`carol, without a secure element, claims it online (Figure 9): online balance ${claimed.online} ${c}.`, { step: 'claim', online: claimed.online, currency: c });
  const synced = [];
  for (const w of [alice, bob]) synced.push({ wallet: w.name, ...(await w.sync()) });
  say(`alice and bob sync: reports reconciled, revocation list v${synced[0]?.crlVersion}, fraud cases: ${synced.reduce((n, s) => n + s.fraud.length, 0)}.`, { step: 'sync', scheme: 'ops', wallets: synced });
  const wd = await alice.withdraw('20.00');
  say(`alice withdraws ${wd.amount} ${c} back online (Figure 6): online balance ${wd.online} ${c}.`, { step: 'withdraw', scheme: 'ops', currency: c, ...wd });
  for (const w of [alice, bob, carol]) {
    const b = await w.balance();
    aside(`${w.name.padEnd(6)} online ${b.online ?? '?'} ${c}  offline ${b.offline === null ? '-' : `${b.offline} ${c}`}`, { step: 'balance', scheme: 'ops', wallet: w.name, online: b.online, offline: b.offline, currency: c });
  }

}
