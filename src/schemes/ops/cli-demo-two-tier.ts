/**
 * OPS's chapter of `tally demo --two-tier`: a device of Bank A pays a customer of Bank B offline;
 * B's wallet verifies it to the common root through A's certificate, and B's sync of the collect
 * presents it to A through the central bank, which moves the reserves once A accepts. A claim on a
 * bank that is down waits for it; a cloned device of A that pays at both banks is caught at A, its
 * payment at B refused, and B's wallet refuses the revoked device offline once it holds A's list.
 */
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { fromBase64url } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeRevocationList } from '../../pki/revocation.ts';
import type { DemoBank, TwoTierDemoContext } from '../../cli/plugin.ts';
import { NodeClient, type PeerSet } from '../../wallet/plugin.ts';
import { Wallet } from './wallet.ts';

type Answer = Record<string, unknown>;

/** A public GET's JSON answer. @throws Error on any answer but 200 */
async function publicGet(url: string): Promise<Answer> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
  return (await res.json()) as Answer;
}

/** An operator's GET at a node. */
async function operatorGet(node: { url: string; operatorToken: string }, path: string): Promise<Answer> {
  return (await new NodeClient(node.url).operator(node.operatorToken, 'GET', path, {})).body as Answer;
}

/** The code of an error: the node's own when it refused, the trusted app's reason when it refused, else the error's. */
function codeOf(e: unknown): string {
  if (isTallyError(e, 'NODE_REFUSED')) return e.details.code;
  if (isTallyError(e, 'SE_REJECTED')) return e.details.reason;
  return isTallyError(e) ? e.code : String(e);
}

/** Tells OPS's part of the two-tier demo. */
export async function opsTwoTierDemo(context: TwoTierDemoContext): Promise<void> {
  const { centralBank, bankA, bankB, say, aside, missed, keep, settle } = context;
  const create = async (bank: DemoBank, name: string, secureElement: boolean) => {
    // The demo's homes are thrown away after it: a wallet without a secure element gets a fixed passphrase.
    const w = await Wallet.create({ home: bank.home, name, node: bank.node.url, secureElement, passphrase: { env: { TALLY_WALLET_PASSPHRASE: `demo passphrase of ${name}` }, isTTY: false } });
    keep(w);
    return w;
  };
  // What a wallet takes of the other banks: the certificates its own bank serves (GET /v1/interbank/peers),
  // the root's list of revoked intermediaries, and the other bank's own list of revoked devices.
  const peersFor = async (own: DemoBank, other: DemoBank): Promise<PeerSet> => {
    const served = (await publicGet(`${own.node.url}/v1/interbank/peers`))['peers'] as Answer[];
    const rootList = (await publicGet(`${centralBank.url}/v1/cb/revocations`))['list'] as string;
    const otherList = (await publicGet(`${other.node.url}/v1/revocations`))['list'] as string;
    return { intermediaries: served.map((p) => fromBase64url(p['certificate'] as string)), rootCrl: fromBase64url(rootList), crls: [fromBase64url(otherList)] };
  };
  const reserves = async () => {
    const listed = (await operatorGet(centralBank, '/v1/cb/intermediaries'))['intermediaries'] as Answer[];
    const of = (bank: DemoBank) => String(listed.find((i) => i['keyId'] === bank.keyId)?.['reserve'] ?? '?');
    return { a: of(bankA), b: of(bankB) };
  };
  const claimAtCb = async (claimId: string) => ((await operatorGet(centralBank, '/v1/cb/operator/claims'))['claims'] as Answer[]).find((x) => x['claimId'] === claimId) ?? {};
  const exposureB = async () => (((await operatorGet(bankB.node, '/v1/audit'))['exposure'] as Answer[]).find((e) => e['scheme'] === 'ops') ?? {});
  const floatB = async () => String((await exposureB())['float'] ?? '?');
  const minor = (text: string) => BigInt(text.replace('.', ''));

  // 1. The wallets.
  let alice = await create(bankA, 'alice', true);
  const bob = await create(bankB, 'bob', true);
  const carol = await create(bankA, 'carol', false);
  const c = alice.currency.code;
  await bankA.mint(alice.snapshot().user.account, '100.00', 'demo-two-tier-ops-mint');
  const dep = await alice.deposit('60.00');
  say(
    `OPS across the banks, with new OPS wallets: alice's at Bank A has a secure element certified by A; Bank A mints 100.00 ${c} into her account and she deposits ${dep.amount} ${c} into her secure element (offline balance ${dep.offline} ${c}). bob's at Bank B has a secure element certified by B; carol's at Bank A has none.`,
    { step: 'ops-wallets', scheme: 'ops', currency: c, alice: alice.snapshot().device?.keyId, bob: bob.snapshot().device?.keyId, carol: carol.snapshot().user.account, deposited: dep.amount, offline: dep.offline },
  );

  // 2. Both wallets sync and take the other bank's certificate; alice pays bob offline.
  await alice.sync();
  await bob.sync();
  const takenA = await alice.takePeers(await peersFor(bankA, bankB));
  const takenB = await bob.takePeers(await peersFor(bankB, bankA));
  const { token: request1 } = await bob.request('12.50', 'books');
  const paid1 = await alice.pay(request1);
  const accepted1 = await bob.accept(paid1.token);
  const collected1 = await bob.collect();
  say(
    `alice and bob sync, and each wallet takes the other bank's intermediary certificate as its own bank serves it (GET /v1/interbank/peers), the root's list of revoked intermediaries (from the central bank) and the other bank's own list of revoked devices (from that bank); each wallet verifies them under the root, and so does each trusted app. Offline, bob asks for 12.50 ${c}; alice's secure element pays it (payment ${paid1.entry.index}); bob's wallet verifies the payment to the common root through Bank A's certificate and collects ${bob.format(BigInt(accepted1.amount))} ${c} into his secure element: offline balance ${collected1.offline} ${c}.`,
    { step: 'ops-pay-across', scheme: 'ops', currency: c, peers: { alice: takenA.peers, bob: takenB.peers }, index: paid1.entry.index, amount: bob.format(BigInt(accepted1.amount)), collected: collected1.collected.length, offline: collected1.offline },
  );
  if (collected1.collected.length !== 1) missed("bob's secure element did not take in the payment from Bank A's device");

  // 3. bob's sync presents the collect; the banks settle it.
  const before = await reserves();
  const floatB0 = await floatB();
  const synced1 = await bob.sync();
  const claim1 = synced1.foreign?.[0]?.claim;
  say(
    claim1 === undefined
      ? `bob syncs at Bank B, but B did not present the payment: ${synced1.foreign?.[0]?.message ?? 'no claim'} [${synced1.foreign?.[0]?.code ?? '?'}].`
      : `bob syncs at Bank B with the payment he collected: B records a claim on Bank A, ${claim1.claimId.slice(0, 16)}... for ${claim1.amount} ${c} (${claim1.status}), which its next sync presents to A through the central bank.`,
    { step: 'ops-claim', scheme: 'ops', currency: c, claimId: claim1?.claimId, status: claim1?.status, amount: claim1?.amount, code: synced1.foreign?.[0]?.code },
  );
  if (claim1 === undefined) missed("Bank B did not present bob's collect to Bank A");
  const audit1 = await settle();
  const after1 = await reserves();
  const floatB1 = await floatB();
  const state1 = claim1 === undefined ? {} : await claimAtCb(claim1.claimId);
  say(
    `The banks sync: A accepts the claim and the central bank marks it ${String(state1['status'] ?? 'unknown')}, moving ${claim1?.amount ?? '?'} ${c} from Bank A's reserve (${before.a} -> ${after1.a} ${c}) to Bank B's (${before.b} -> ${after1.b} ${c}); B's offline float, which backs what bob holds, grows from ${floatB0} to ${floatB1} ${c}. The system's audit: ${audit1['balanced'] === true ? 'balanced' : 'NOT balanced'}.`,
    { step: 'ops-settled', scheme: 'ops', currency: c, status: state1['status'], reserves: { before, after: after1 }, floatB: { before: floatB0, after: floatB1 }, balanced: audit1['balanced'] },
  );
  if (state1['status'] !== 'settled') missed("the claim on Bank A was not settled");
  if (claim1 !== undefined && minor(floatB1) - minor(floatB0) !== minor(claim1.amount)) missed("Bank B's offline float was not credited with the claim");
  if (minor(before.a) - minor(after1.a) !== minor(claim1?.amount ?? '0') || minor(after1.b) - minor(before.b) !== minor(claim1?.amount ?? '0')) missed('the reserves did not move by the claim');
  if (audit1['balanced'] !== true) missed("the system's audit did not balance");

  // 4. Bank A is down: the claim waits for it.
  await bankA.stop();
  const { token: request2 } = await bob.request('7.00', 'tea');
  const paid2 = await alice.pay(request2);
  await bob.accept(paid2.token);
  await bob.collect();
  const synced2 = await bob.sync();
  const claim2 = synced2.foreign?.[0]?.claim;
  await new NodeClient(bankB.node.url).operator(bankB.node.operatorToken, 'POST', '/v1/operator/reserve/sync', { body: {}, idempotencyKey: 'demo-two-tier-ops-b-sync' });
  const waiting = claim2 === undefined ? {} : await claimAtCb(claim2.claimId);
  say(
    `Bank A's node stops. Offline, alice pays bob 7.00 ${c} (payment ${paid2.entry.index}) and he collects it; his sync at Bank B records claim ${claim2?.claimId.slice(0, 16) ?? '?'}... and B's sync presents it to the central bank, where it waits for A (${String(waiting['status'] ?? 'unknown')}).`,
    { step: 'ops-bank-down', scheme: 'ops', currency: c, claimId: claim2?.claimId, status: waiting['status'], index: paid2.entry.index },
  );
  if (waiting['status'] !== 'presented') missed('the claim on the stopped bank was not waiting for it');
  await bankA.start();
  const audit2 = await settle();
  const done = claim2 === undefined ? {} : await claimAtCb(claim2.claimId);
  const after2 = await reserves();
  say(
    `Bank A's node starts again over its folder; at its sync it finds the claim in its inbox, accepts it, and the claim is ${String(done['status'] ?? 'unknown')}: reserves A ${after2.a} ${c}, B ${after2.b} ${c}; the system's audit ${audit2['balanced'] === true ? 'balanced' : 'NOT balanced'}.`,
    { step: 'ops-bank-back', scheme: 'ops', currency: c, claimId: claim2?.claimId, status: done['status'], reserves: after2, balanced: audit2['balanced'] },
  );
  if (done['status'] !== 'settled') missed('the waiting claim was not settled once Bank A came back');

  // 5. A clone of alice's secure element pays at both banks with the same index.
  await alice.close();
  await cp(join(bankA.home, 'wallets', 'alice'), join(bankA.home, 'wallets', 'alice-clone'), { recursive: true });
  alice = await Wallet.open(bankA.home, 'alice');
  keep(alice);
  const clone = await Wallet.open(bankA.home, 'alice-clone');
  keep(clone);
  const toCarol = await alice.pay((await carol.request('10.00', 'rent')).token);
  const toBob = await clone.pay((await bob.request('10.00', 'rent')).token);
  await carol.accept(toCarol.token);
  const carolClaim = await carol.claim();
  await bob.accept(toBob.token);
  const collected3 = await bob.collect();
  const listA0 = decodeRevocationList(fromBase64url((await publicGet(`${bankA.node.url}/v1/revocations`))['list'] as string));
  say(
    `Someone copies alice's wallet folder, secure element and all. alice's device pays carol 10.00 ${c} (payment ${toCarol.entry.index}) and the copy pays bob 10.00 ${c} with the same index (${toBob.entry.index}). carol claims hers online at Bank A: ${carolClaim.claimed.length === 1 ? `credited, online balance ${carolClaim.online ?? '?'} ${c}` : 'not credited'}. Offline, bob's wallet and secure element cannot tell: he collects it (offline balance ${collected3.offline} ${c}).`,
    { step: 'ops-clone', scheme: 'ops', currency: c, carolIndex: toCarol.entry.index, bobIndex: toBob.entry.index, carolCredited: carolClaim.claimed.length === 1, carolOnline: carolClaim.online, offline: collected3.offline },
  );
  if (toCarol.entry.index !== toBob.entry.index) missed('the copy did not sign the same index again');
  const floatB2 = await floatB();
  const reservesBefore = await reserves();
  const synced3 = await bob.sync();
  const claim3 = synced3.foreign?.[0]?.claim;
  const audit3 = await settle();
  const refusedClaim = claim3 === undefined ? {} : await claimAtCb(claim3.claimId);
  const cases = ((await operatorGet(bankA.node, '/v1/ops/fraud'))['cases'] as Answer[]).filter((f) => f['device'] === alice.snapshot().device?.keyId);
  const listA1 = decodeRevocationList(fromBase64url((await publicGet(`${bankA.node.url}/v1/revocations`))['list'] as string));
  const exposed = await exposureB();
  const floatB3 = String(exposed['float'] ?? '?');
  const loss = ((exposed['exposed'] ?? []) as Answer[]).find((x) => x['device'] === cases[0]?.['device']);
  const reservesAfter = await reserves();
  say(
    `bob syncs; Bank B presents the claim (${claim3?.claimId.slice(0, 16) ?? '?'}...) and the banks sync. Bank A already holds payment ${toCarol.entry.index} of that device: it opens a fraud case (${cases.map((f) => String(f['kind'])).join(', ') || 'none'}) naming device ${String(cases[0]?.['device'] ?? '?').slice(0, 16)}..., revokes it (its list of revoked devices goes from version ${listA0.body.version} to ${listA1.body.version}) and refuses the claim: ${String(refusedClaim['code'] ?? refusedClaim['status'] ?? 'unknown')}, "${String(refusedClaim['reason'] ?? '')}". Bank B learns the refusal at its sync and credits nothing: its offline float stays ${floatB3} ${c} while bob's device holds ${collected3.offline} ${c}, and B's audit names the ${String(loss?.['amount'] ?? '?')} ${c} short as the fraud of that device of A; no reserve moved (A ${reservesAfter.a} ${c}, B ${reservesAfter.b} ${c}). The system's audit: ${audit3['balanced'] === true ? 'balanced' : 'NOT balanced'}.`,
    { step: 'ops-double-spend', scheme: 'ops', currency: c, claimId: claim3?.claimId, status: refusedClaim['status'], code: refusedClaim['code'], device: cases[0]?.['device'], fraud: cases.map((f) => f['kind']), listVersion: { before: listA0.body.version, after: listA1.body.version }, floatB: { before: floatB2, after: floatB3 }, exposed: loss ?? null, reserves: { before: reservesBefore, after: reservesAfter }, balanced: audit3['balanced'] },
  );
  if (refusedClaim['code'] !== 'DOUBLE_SPEND') missed("Bank A did not refuse the copy's payment to bob as a double spend");
  if (cases.length === 0) missed('Bank A named no device for the double spend');
  if (floatB3 !== floatB2) missed("Bank B's float was credited for a refused claim");
  if (reservesAfter.a !== reservesBefore.a || reservesAfter.b !== reservesBefore.b) missed('a reserve moved for a refused claim');
  if (audit3['balanced'] !== true) missed("the system's audit did not balance");

  // The revoked device pays bob again: refused offline once his wallet holds A's newer list.
  await bob.sync();
  await bob.takePeers(await peersFor(bankB, bankA));
  const late = await clone.pay((await bob.request('3.00', 'more')).token);
  try {
    await bob.accept(late.token);
    missed("bob's wallet accepted a payment from a revoked device");
  } catch (e) {
    aside(`bob syncs and takes Bank A's newer list; the copy pays him 3.00 ${c} more, and his wallet refuses it offline: ${codeOf(e)}.`, { step: 'ops-revoked-refused', scheme: 'ops', code: codeOf(e) });
  }
  const end = await settle();
  aside(`After OPS's chapter the system's audit is ${end['balanced'] === true ? 'balanced' : 'NOT balanced'}: issued ${String(end['issued'])} ${c} = reserves ${String(end['reserves'])} ${c}.`, { step: 'ops-audit', scheme: 'ops', balanced: end['balanced'] });
  if (end['balanced'] !== true) missed("the system's audit did not balance");
}
