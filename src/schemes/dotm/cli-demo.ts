/**
 * DOT-M's chapter of `tally demo`: two wallets, a deposit as currency blocks, the nine-step payment
 * over TCP + Noise, syncs and a withdrawal.
 */
import type { DemoContext } from '../../cli/plugin.ts';
import { DotmWallet } from './wallet.ts';

/** The payment password of the demo's wallets. */
const DEMO_PASSWORD = 'demo payment password';

/** Tells DOT-M's part of the demo. */
export async function dotmDemo({ home, node, mint, say, aside, keep }: DemoContext): Promise<void> {
  let c = '?';
  const createDotm = async (name: string) => {
    const w = await DotmWallet.create({ home, name, node: node.url, password: DEMO_PASSWORD });
    keep(w);
    return w;
  };
  const dave = await createDotm('dave');
  c = dave.currency.code;
  const erin = await createDotm('erin');
  say('DOT-M wallets: dave and erin, each with a secure element holding its user key (usk), wallet key (wsk) and payment password.', {
    step: 'wallets',
    scheme: 'dotm',
    dave: dave.snapshot().slot?.wallet,
    erin: erin.snapshot().slot?.wallet,
  });
  await mint(dave.snapshot().user.account, '50.00', 'demo-mint-dotm');
  say(`The central bank mints 50.00 ${c} into dave's online account.`, { step: 'mint', scheme: 'dotm', amount: '50.00', currency: c });
  const blocks = await dave.deposit('30.00', 3);
  say(`dave deposits ${blocks.amount} ${c} as ${blocks.blocks} currency blocks signed by the central bank (§3.3.2): offline balance ${blocks.offline} ${c}.`, { step: 'deposit', scheme: 'dotm', currency: c, ...blocks });

  let dotmPort = 0;
  let dotmListening!: () => void;
  const dotmReady = new Promise<void>((resolve) => (dotmListening = resolve));
  const erinReceiving = erin.receive('12.00', { port: 0, host: '127.0.0.1', timeoutMs: 30_000, onListening: (p) => { dotmPort = p; dotmListening(); } });
  erinReceiving.catch(() => undefined);
  await Promise.race([dotmReady, erinReceiving]);
  const dotmPaid = await dave.payTo('127.0.0.1', dotmPort, { password: DEMO_PASSWORD, expect: '12.00', timeoutMs: 30_000 });
  const dotmReceived = await erinReceiving;
  say(
    `erin listens on TCP; dave pays her ${dotmPaid.amount} ${c} offline in the nine steps over Noise (§3.3.3: request, password, records signed with usk appended to ${dotmPaid.blocks} block(s), verified by erin's secure element): erin's transaction ${dotmReceived.status}.`,
    { step: 'pay-dotm', amount: dotmPaid.amount, currency: c, payer: dotmPaid.status, payee: dotmReceived.status, tsn: dotmPaid.tsn, blocks: dotmPaid.blocks },
  );
  const dotmSynced = [];
  for (const w of [dave, erin]) {
    const s = await w.sync();
    dotmSynced.push({ wallet: w.name, uploaded: s.uploaded, refused: s.results.filter((r) => r.status === 'refused').length, findings: s.findings.length });
  }
  say(`dave and erin sync (online data updating, §3.3.4): ${dotmSynced.reduce((n, s) => n + s.uploaded, 0)} signed events uploaded, ${dotmSynced.reduce((n, s) => n + s.refused, 0)} refused, double-spending findings: ${dotmSynced.reduce((n, s) => n + s.findings, 0)}.`, {
    step: 'sync',
    scheme: 'dotm',
    wallets: dotmSynced,
  });
  const redeemed = await erin.withdraw('12.00', DEMO_PASSWORD);
  say(`erin withdraws ${redeemed.amount} ${c}: her secure element gives the block copies up and the node credits her account${redeemed.credited ? '' : ' (not yet: at the next sync)'}: online balance ${redeemed.online ?? '?'} ${c}.`, { step: 'withdraw', scheme: 'dotm', currency: c, ...redeemed });
  for (const w of [dave, erin]) {
    const b = await w.balance();
    aside(`${w.name.padEnd(6)} online ${b.online ?? '?'} ${c}  offline ${b.offline} ${c} in ${b.blocks.length} block(s)`, { step: 'balance', scheme: 'dotm', wallet: w.name, online: b.online, offline: b.offline, currency: c });
  }

}
