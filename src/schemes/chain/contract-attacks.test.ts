/**
 * OfflineAccounts against forged, altered and malformed uploads on a real anvil, each with its
 * attribution (docs/chain.md, the freeze rule): an item a correct TEE would have refused freezes
 * the uploader and changes nothing else; a relayer's alteration or a malformed upload signature
 * reverts. Payer faults (forks, enclaves) are in contract-faults.test.ts.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { hashTypedData, keccak256, recoverAddress, type Address, type Hex } from 'viem';
import { startAnvilEnv, type AnvilEnv } from './anvil-fixtures.ts';
import {
  ACK,
  ackPayment,
  CHAIN_TYPES,
  chainDomain,
  KIND,
  makePayment,
  signAck,
  signPaymentRecord,
  signState,
  signUpload,
  toItem,
  paymentHash,
  type Device,
  type UploadItem,
} from './upload-fixtures.ts';
import { assertReverts, eventNames, eventsNamed, revertName, World } from './world-fixtures.ts';

/** OfflineAccounts' FAULT_* constants. */
const FAULT = {
  kind: 1,
  ackStatus: 2,
  amount: 3,
  payee: 4,
  notParty: 5,
  ackOnPayOut: 6,
  notOwnPayOut: 7,
  attestation: 8,
  payerSignature: 9,
  ackSignature: 10,
  otherEnclave: 11,
} as const;
const FROZEN = 2;
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = N / 2n;
/** The r of some valid signature (a point's x coordinate). */
const ARBITRARY_R = '0xe0d5c670f59920076d91120957b936948ce549ca3f668cbffc723986c952583d';
const ZERO32: Hex = `0x${'00'.repeat(32)}`;

let env: AnvilEnv;
let world: World;
let clean: Hex;
let alice: Device, bob: Device, carol: Device, mallory: Device, eve: Device, dave: Device;

before(async () => {
  env = await startAnvilEnv();
  world = new World(env);
  [alice, bob, carol, mallory, eve, dave] = ['alice', 'bob', 'carol', 'mallory', 'eve', 'dave'].map((label) => world.device(label)) as [Device, Device, Device, Device, Device, Device];
  await world.register(alice, bob, carol, mallory, dave);
  // eve's enclave is not registered. Everyone else pays once (counter 0), so each is bound.
  for (const device of [alice, bob, carol, mallory]) await world.deposit(device.address, 100n);
  const ring: [Device, Device][] = [[alice, bob], [bob, carol], [carol, alice], [mallory, alice]];
  for (const [payer, payee] of ring) await world.reconcile(payer, [await world.paid(payer, payee, { amount: 10n, counter: 0n, stateBalance: 100n }, true)]);
  clean = await env.snapshot();
});

after(async () => {
  await env?.close();
});

beforeEach(async () => {
  await env.revert(clean);
  clean = await env.snapshot();
});

// Conservation after every scenario, whatever it asserted itself.
afterEach(async () => {
  await world.assertConservation();
});

/** The malleated twin of a 65-byte signature: s → n - s (a high s), v flipped; ecrecover still accepts it. */
function highTwin(sig: Hex): Hex {
  const s = BigInt(`0x${sig.slice(66, 130)}`);
  const v = Number.parseInt(sig.slice(130, 132), 16);
  return `${sig.slice(0, 66)}${(N - s).toString(16).padStart(64, '0')}${(v === 27 ? 28 : 27).toString(16)}` as Hex;
}

/** A payment alice (balance 110 on chain, next counter 1) makes to `payee`. */
function fromAlice(payee: Device | Address, fields: { amount: bigint; stateBalance?: bigint; kind?: number; counter?: bigint }, ok?: boolean): Promise<UploadItem> {
  return world.paid(alice, payee, { counter: 1n, stateBalance: 110n, ...fields }, ok);
}

/** Everything a scenario could change: the accounts' balances and statuses, and (payer, counter) states. */
async function chainState(items: readonly UploadItem[]): Promise<unknown> {
  const accounts = [];
  for (const device of [alice, bob, carol, mallory, eve, dave]) accounts.push(await world.account(device.address));
  const payments = [];
  for (const item of items) payments.push(await world.paymentState(item.payer, item.counter));
  return { accounts, payments };
}

interface UploaderFault {
  readonly name: string;
  readonly uploader: () => Device;
  readonly items: () => Promise<UploadItem[]>;
  readonly reason: number;
}

const UPLOADER_FAULTS: readonly UploaderFault[] = [
  { name: 'an altered amount', uploader: () => bob, reason: FAULT.payerSignature, items: async () => [{ ...(await fromAlice(bob, { amount: 30n }, true)), amount: 40n }] },
  { name: 'an altered tGen', uploader: () => bob, reason: FAULT.payerSignature, items: async () => { const item = await fromAlice(bob, { amount: 30n }, true); return [{ ...item, tGen: item.tGen + 3600n }]; } },
  {
    name: 'a swapped payee (a man in the middle claims the payment and acks it himself)',
    uploader: () => mallory,
    reason: FAULT.payerSignature,
    items: async () => {
      const signed = await makePayment(world.domain, alice, { payee: bob.address, amount: 30n, counter: 1n, tGen: await world.now(), stateBalance: 110n });
      const stolen = { ...signed, payment: { ...signed.payment, payee: mallory.address } };
      return [toItem(stolen, { ok: true, sig: await ackPayment(world.domain, mallory, stolen, true) })];
    },
  },
  { name: 'a payment the uploader is no party to (uploaded by a man in the middle)', uploader: () => mallory, reason: FAULT.notParty, items: async () => [await fromAlice(bob, { amount: 30n }, true)] },
  {
    name: 'σ_att by an unregistered key in the name of the registered enclave',
    uploader: () => bob,
    reason: FAULT.attestation,
    items: async () => {
      const attSig = await signState(world.domain, eve.enclave, { account: alice.address, counter: 1n, balance: 110n });
      const payment = { payer: alice.address, payee: bob.address, amount: 30n, counter: 1n, tGen: await world.now(), kind: KIND.pay, enclave: alice.enclave.address, attestation: keccak256(attSig) };
      const signed = { payment, stateBalance: 110n, attSig, payerSig: await signPaymentRecord(world.domain, alice.key, payment) };
      return [toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, true) })];
    },
  },
  {
    name: 'σ_att over another counter than the payment\'s',
    uploader: () => bob,
    reason: FAULT.attestation,
    items: async () => {
      const attSig = await signState(world.domain, alice.enclave, { account: alice.address, counter: 2n, balance: 110n });
      const payment = { payer: alice.address, payee: bob.address, amount: 30n, counter: 1n, tGen: await world.now(), kind: KIND.pay, enclave: alice.enclave.address, attestation: keccak256(attSig) };
      const signed = { payment, stateBalance: 110n, attSig, payerSig: await signPaymentRecord(world.domain, alice.key, payment) };
      return [toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, true) })];
    },
  },
  { name: 'an altered State.balance', uploader: () => bob, reason: FAULT.attestation, items: async () => [{ ...(await fromAlice(bob, { amount: 30n, stateBalance: 40n }, true)), stateBalance: 50n }] },
  { name: 'σ_att with r = 0 (ecrecover answers zero)', uploader: () => bob, reason: FAULT.attestation, items: async () => [{ ...(await fromAlice(bob, { amount: 30n }, true)), attR: ZERO32 }] },
  {
    name: 'σ_2 by someone else than the payee',
    uploader: () => bob,
    reason: FAULT.ackSignature,
    items: async () => {
      const signed = await makePayment(world.domain, alice, { payee: bob.address, amount: 30n, counter: 1n, tGen: await world.now(), stateBalance: 110n });
      return [toItem(signed, { ok: true, sig: await signAck(world.domain, carol.key, { payment: paymentHash(signed.payment), payee: bob.address, ok: true }) })];
    },
  },
  {
    name: 'an ack_fail presented as ack_win',
    uploader: () => bob,
    reason: FAULT.ackSignature,
    items: async () => {
      const signed = await makePayment(world.domain, alice, { payee: bob.address, amount: 30n, counter: 1n, tGen: await world.now(), stateBalance: 110n });
      return [toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, false) })];
    },
  },
  {
    // A compact signature cannot carry a high s above 2^255; one below it is made here for an
    // enclave address that fits it. Without the low-s rule the contract would recover that address
    // and blame the payer for an unregistered enclave; with it, σ_att is not the enclave's.
    name: 'σ_att with a high s (for an enclave address made to fit it)',
    uploader: () => bob,
    reason: FAULT.attestation,
    items: async () => {
      const state = { account: alice.address, counter: 1n, balance: 110n };
      const attSig: Hex = `${ARBITRARY_R}${(HALF_N + 1n).toString(16).padStart(64, '0')}1b`;
      const enclave = await recoverAddress({ hash: hashTypedData({ domain: world.domain, types: CHAIN_TYPES, primaryType: 'State', message: state }), signature: attSig });
      const payment = { payer: alice.address, payee: bob.address, amount: 30n, counter: 1n, tGen: await world.now(), kind: KIND.pay, enclave, attestation: keccak256(attSig) };
      const signed = { payment, stateBalance: 110n, attSig, payerSig: await signPaymentRecord(world.domain, alice.key, payment) };
      return [toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, true) })];
    },
  },
  { name: 'amount 0', uploader: () => bob, reason: FAULT.amount, items: async () => [await fromAlice(bob, { amount: 0n }, true)] },
  { name: 'an amount above State.balance', uploader: () => bob, reason: FAULT.amount, items: async () => [await fromAlice(bob, { amount: 111n }, true)] },
  { name: 'a kind out of range', uploader: () => bob, reason: FAULT.kind, items: async () => [await fromAlice(bob, { amount: 5n, kind: 3 }, true)] },
  { name: 'an ack status out of range', uploader: () => bob, reason: FAULT.ackStatus, items: async () => [{ ...(await fromAlice(bob, { amount: 5n }, true)), ack: 3 }] },
  {
    name: 'an ack on a withdrawal',
    uploader: () => alice,
    reason: FAULT.ackOnPayOut,
    items: async () => {
      const signed = await makePayment(world.domain, alice, { payee: bob.address, amount: 5n, counter: 1n, tGen: await world.now(), stateBalance: 110n, kind: KIND.withdraw });
      return [toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, true) })];
    },
  },
  { name: 'a withdrawal uploaded by another account', uploader: () => bob, reason: FAULT.notOwnPayOut, items: async () => [await fromAlice(bob.address, { amount: 5n, kind: KIND.withdraw })] },
  { name: 'a closing uploaded by another account', uploader: () => bob, reason: FAULT.notOwnPayOut, items: async () => [await fromAlice(bob.address, { amount: 110n, kind: KIND.close })] },
  { name: 'a withdrawal to the contract itself', uploader: () => alice, reason: FAULT.payee, items: async () => [await fromAlice(env.accounts, { amount: 5n, kind: KIND.withdraw })] },
  { name: 'a payment to the zero address', uploader: () => alice, reason: FAULT.payee, items: async () => [await fromAlice('0x0000000000000000000000000000000000000000', { amount: 5n })] },
  {
    name: 'the uploader\'s own payment attested by another (registered) enclave',
    uploader: () => alice,
    reason: FAULT.otherEnclave,
    items: async () => {
      const clone = { ...alice, enclave: bob.enclave };
      return [await world.paid(clone, bob, { amount: 5n, counter: 1n, stateBalance: 110n }, true)];
    },
  },
  {
    name: 'a good item followed by a bad one (the good one is not applied either)',
    uploader: () => bob,
    reason: FAULT.amount,
    items: async () => [await fromAlice(bob, { amount: 30n }, true), await world.paid(carol, bob, { amount: 91n, counter: 1n, stateBalance: 90n }, true)],
  },
];

describe('OfflineAccounts: an item a correct TEE would refuse freezes the uploader, and nothing else changes', () => {
  for (const fault of UPLOADER_FAULTS) {
    it(fault.name, async () => {
      const uploader = fault.uploader();
      const items = await fault.items();
      const before = await chainState(items);
      const settled = await world.reconcile(uploader, items);
      assert.equal(settled.result, false, 'reconcile answers false');
      assert.deepEqual(settled.events.map((e) => [e.eventName, e.args]), [['Frozen', { account: uploader.address, reason: fault.reason }]]);
      const after = (await chainState(items)) as { accounts: { status: number }[] };
      const expected = before as { accounts: { status: number }[]; payments: number[] };
      const index = [alice, bob, carol, mallory, eve, dave].indexOf(uploader);
      expected.accounts[index] = { ...(expected.accounts[index] as object), status: FROZEN } as { status: number };
      assert.deepEqual(after, expected);
      await world.assertConservation();
    });
  }
});

describe('OfflineAccounts: what cannot be attributed reverts', () => {
  /** A valid upload by bob of alice's payment, and its signature. */
  async function signedUpload(): Promise<{ items: UploadItem[]; sig: Hex }> {
    const items = [await fromAlice(bob, { amount: 30n }, true), await world.paid(carol, bob, { amount: 20n, counter: 1n, stateBalance: 100n }, true)];
    return { items, sig: await signUpload(world.domain, bob.enclave, bob.address, items) };
  }

  it('items altered, removed or reordered after the uploader\'s enclave signed them', async () => {
    const { items, sig } = await signedUpload();
    const [first, second] = items as [UploadItem, UploadItem];
    const other = await world.paid(carol, bob, { amount: 21n, counter: 1n, stateBalance: 100n }, true);
    // Dropping an ack (a relayer stripping ack_win so that a payer's late upload voids the payment) is an alteration too.
    const stripped = { ...first, ack: 0, ackR: ZERO32, ackVS: ZERO32 };
    for (const forged of [[{ ...first, amount: 31n }, second], [{ ...first, attR: other.attR, attVS: other.attVS }, second], [first], [second, first], [first, other], [stripped, second]]) {
      await assertReverts(world.reconcileCall(bob.address, forged, sig), 'UnknownUploadSigner');
    }
    await assertReverts(world.reconcileCall(carol.address, items, sig), 'UnknownUploadSigner');
    assert.deepEqual(eventNames(await world.reconcile(bob, items, sig)), ['Applied', 'Applied', 'Reconciled']);
    await world.assertConservation();
  });

  it('an upload signed for another chain or another contract', async () => {
    const { items } = await signedUpload();
    for (const domain of [chainDomain(env.chain.id + 1, env.accounts), chainDomain(env.chain.id, env.token)]) {
      await assertReverts(world.reconcileCall(bob.address, items, await signUpload(domain, bob.enclave, bob.address, items)), 'UnknownUploadSigner');
    }
  });

  it('an upload signed by an enclave the account is not bound to, or (unbound) by an unregistered one', async () => {
    const { items } = await signedUpload();
    await assertReverts(world.reconcileCall(bob.address, items, await signUpload(world.domain, carol.enclave, bob.address, items)), 'UnknownUploadSigner');
    const toEve = [await fromAlice(eve, { amount: 5n }, true)];
    await assertReverts(world.reconcileCall(eve.address, toEve, await signUpload(world.domain, eve.enclave, eve.address, toEve)), 'UnknownUploadSigner');
    // dave is unbound and his enclave registered: his clean upload settles.
    const toDave = [await fromAlice(dave, { amount: 5n }, true)];
    assert.deepEqual(eventNames(await world.reconcile(dave, toDave)), ['Applied', 'Reconciled']);
    await world.assertConservation();
  });

  it('a faulty item from an account not bound yet: any registered enclave could have signed it', async () => {
    const items = [{ ...(await fromAlice(dave, { amount: 30n }, true)), amount: 31n }];
    const before = await chainState(items);
    await assertReverts(world.reconcileCall(dave.address, items, await signUpload(world.domain, dave.enclave, dave.address, items)), 'UnattributableUpload');
    // Another registered enclave (mallory's) trying to get dave frozen fails the same way.
    await assertReverts(world.reconcileCall(dave.address, items, await signUpload(world.domain, mallory.enclave, dave.address, items)), 'UnattributableUpload');
    assert.deepEqual(await chainState(items), before);
  });

  it('a malformed upload signature: wrong length, high s, v out of 27/28, r = 0', async () => {
    const { items, sig } = await signedUpload();
    const highS = highTwin(sig);
    const withV = (value: number): Hex => `${sig.slice(0, 130)}${value.toString(16).padStart(2, '0')}` as Hex;
    const malformed: Hex[] = ['0x', sig.slice(0, 130) as Hex, `${sig}00`, highS, withV(29), withV(0), withV(1), `0x${'00'.repeat(32)}${sig.slice(66)}`];
    for (const [index, bad] of malformed.entries()) assert.equal(await revertName(world.reconcileCall(bob.address, items, bad)), 'MalformedSignature', `malformed signature ${index}`);
    assert.deepEqual(eventNames(await world.reconcile(bob, items, sig)), ['Applied', 'Applied', 'Reconciled']);
  });

  it('an empty upload, and one over MAX_ITEMS; MAX_ITEMS items settle', async () => {
    await assertReverts(world.reconcileCall(bob.address, [], await signUpload(world.domain, bob.enclave, bob.address, [])), 'EmptyUpload');
    const items: UploadItem[] = [];
    for (let counter = 1n; counter <= 65n; counter++) items.push(await world.paid(alice, bob, { amount: 1n, counter, stateBalance: 111n - counter }));
    await assertReverts(world.reconcileCall(alice.address, items, await signUpload(world.domain, alice.enclave, alice.address, items)), 'TooManyItems');
    const settled = await world.reconcile(alice, items.slice(0, 64));
    assert.deepEqual(eventsNamed(settled, 'Reconciled')[0]?.args, { account: alice.address, applied: 0, recorded: 64, failed: 0 });
    console.log(`reconcile of 64 recorded payments: ${settled.receipt.gasUsed} gas`);
    assert.equal(items[0]?.ack, ACK.none);
    await world.assertConservation();
  });
});
