/**
 * OTP's chapter of `tally demo`: two wallets, coins withdrawn blindly, exchange keys at a sync, an
 * anonymous payment over TCP + Noise, a payment with change, and a deposit back.
 */
import type { DemoContext } from '../../cli/plugin.ts';
import { OtpWallet } from './wallet.ts';

/** Tells OTP's part of the demo. */
export async function otpDemo({ home, node, mint, say, aside, keep }: DemoContext): Promise<void> {
  const create = async (name: string) => {
    const w = await OtpWallet.create({ home, name, node: node.url });
    keep(w);
    return w;
  };
  const gwen = await create('gwen');
  const hal = await create('hal');
  const c = gwen.currency.code;
  say('OTP wallets: gwen and hal, each a secure element attested by the OEM and registered as a device; their payments show no certificate.', { step: 'wallets', scheme: 'otp', gwen: gwen.snapshot().device?.keyId, hal: hal.snapshot().device?.keyId });
  await mint(gwen.snapshot().user.account, '50.00', 'demo-mint-otp');
  say(`The central bank mints 50.00 ${c} into gwen's online account.`, { step: 'mint', scheme: 'otp', amount: '50.00', currency: c });
  const withdrawn = await gwen.deposit('38.00');
  say(`gwen withdraws ${withdrawn.amount} ${c} as ${withdrawn.coins} coins the bank signs blindly (it cannot link them to their deposit): offline balance ${withdrawn.offline} ${c}.`, { step: 'deposit', scheme: 'otp', currency: c, ...withdrawn });
  const synced = [await gwen.sync(), await hal.sync()];
  say(`gwen and hal sync: ${synced.map((s) => s.keys).join(' and ')} exchange keys, each a one-time key of their secure element signed by the bank.`, { step: 'sync', scheme: 'otp', keys: synced.map((s) => s.keys) });

  const pay = async (payer: OtpWallet, payee: OtpWallet, amount: string) => {
    let port = 0;
    let listening!: () => void;
    const ready = new Promise<void>((resolve) => (listening = resolve));
    const receiving = payee.receive(amount, { port: 0, host: '127.0.0.1', timeoutMs: 30_000, onListening: (p) => { port = p; listening(); } });
    receiving.catch(() => undefined);
    await Promise.race([ready, receiving]);
    const paid = await payer.pay('127.0.0.1', port, amount, { timeoutMs: 30_000 });
    return { paid, received: await receiving };
  };
  const first = await pay(gwen, hal, '7.00');
  say(`hal asks 7.00 ${c}; gwen's secure element runs the program of ${first.paid.coins} coins and seals each to one of hal's exchange keys; his ACKs end them.`, { step: 'pay-otp', scheme: 'otp', amount: first.paid.amount, currency: c, coins: first.paid.coins, change: first.paid.change });
  const second = await pay(gwen, hal, '4.00');
  say(`hal asks 4.00 ${c}; gwen holds no coins that make it exactly: she pays ${second.paid.coins} coins and hal gives ${second.paid.change} back as change, in the same session.`, { step: 'pay-otp-change', scheme: 'otp', amount: second.paid.amount, currency: c, coins: second.paid.coins, change: second.paid.change });
  const back = await hal.withdraw('11.00');
  say(`hal deposits his ${back.coins} coins at the bank: ${back.credited} ${c} credited to his account, each coin once.`, { step: 'withdraw', scheme: 'otp', currency: c, ...back });
  for (const w of [gwen, hal]) {
    const b = await w.balance();
    aside(`${w.name.padEnd(6)} online ${b.online ?? '?'} ${c}  offline ${b.offline} ${c} in ${b.coins.reduce((n, x) => n + x.count, 0)} coin(s)`, { step: 'balance', scheme: 'otp', wallet: w.name, online: b.online, offline: b.offline, currency: c });
  }
}
