/**
 * The chain-tee trusted app in an in-process secure element: the offline transfer of Algorithms 3–4
 * (transfer, receive, pay, abort, reject), the lost ack, coin redistribution, and every forgery the
 * paper's threat model names (section III-B), each refused with nothing changed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fromHex } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { signerFromSecret, suiteFor } from '../../core/crypto/suite.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import type { TxOff } from './messages.ts';
import { encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { certify, hierarchy, signer, T0 } from '../../pki/test-fixtures.ts';
import { CHAIN_ID, CONTRACT, DRIFT_S, fund, makeWallet, NOW, paramsFor, pki, statement, type Wallet } from './ta-fixtures.ts';
import { buildAck, buildTxOff } from './tx-off.ts';
import { paymentHash, type Payment } from './typed-data.ts';

async function refused(call: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(call, (e: unknown) => isTallyError(e, 'SE_REJECTED') && (e.details as { reason?: string }).reason === code, `expected ${code}`);
}

async function snapshot(wallet: Wallet) {
  return wallet.se.call('status', {});
}

async function pay(payer: Wallet, payee: Wallet, amount: bigint, now = NOW) {
  const { txOff } = await payer.se.call('transfer', { payee: payee.account, amount, now });
  const answer = await payee.se.call('receive', { txOff, now });
  return { txOff, answer };
}

const DOMAIN = { chainId: CHAIN_ID, contract: CONTRACT };

/** Bob's TA answers ack_fail, credits nothing and keeps nothing. */
async function refusedAnswer(payee: Wallet, txOff: TxOff): Promise<void> {
  const before = await snapshot(payee);
  const answer = await payee.se.call('receive', { txOff, now: NOW });
  assert.equal(answer.credited, false);
  assert.equal(answer.ack.ok, false);
  assert.deepEqual(await snapshot(payee), before);
}

/** A tx_off with one field changed after signing (the signatures no longer cover it). */
function altered(txOff: TxOff, change: Partial<Payment>): TxOff {
  return { ...txOff, payment: { ...txOff.payment, ...change } };
}

describe('the offline transfer', () => {
  test('a payment moves the amount: the payee credits on receive, the payer settles on ack_win', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await fund(alice, 10_000n);
    const { txOff, answer } = await pay(alice, bob, 2_500n);
    assert.equal(answer.credited, true);
    assert.equal(answer.ack.ok, true);
    assert.deepEqual(answer.ack.payment, paymentHash(txOff.payment));
    assert.equal(txOff.payment.counter, 0n);
    assert.equal(txOff.stateBalance, 10_000n);
    const held = await snapshot(alice);
    assert.equal(held.balance, 7_500n);
    assert.equal(held.pending, 2_500n);
    await alice.se.call('pay', { ack: answer.ack });
    const after = await snapshot(alice);
    assert.equal(after.pending, 0n);
    assert.equal(after.balance, 7_500n);
    assert.equal(after.counter, 1n);
    assert.equal((await snapshot(bob)).balance, 2_500n);
  });

  test('a payee without a deposit pays on what it received (coin redistribution, open transactions)', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await fund(alice, 1_000n);
    const first = await pay(alice, bob, 600n);
    await alice.se.call('pay', { ack: first.answer.ack });
    const second = await pay(bob, carol, 450n);
    assert.equal(second.answer.credited, true);
    await bob.se.call('pay', { ack: second.answer.ack });
    assert.equal((await snapshot(bob)).balance, 150n);
    assert.equal((await snapshot(carol)).balance, 450n);
    await refused(bob.se.call('transfer', { payee: carol.account, amount: 151n, now: NOW }), 'INSUFFICIENT_FUNDS');
  });

  test('a lost ack_win: the amount stays held, the same tx_off is answered again and credited once', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await fund(alice, 1_000n);
    const { txOff, answer } = await pay(alice, bob, 700n);
    // The ack never reached Alice: she may not spend the 700 again.
    await refused(alice.se.call('transfer', { payee: bob.account, amount: 301n, now: NOW }), 'INSUFFICIENT_FUNDS');
    const again = await bob.se.call('receive', { txOff, now: NOW });
    assert.equal(again.credited, false);
    assert.deepEqual(again.ack, answer.ack);
    assert.equal((await snapshot(bob)).balance, 700n);
    await alice.se.call('pay', { ack: again.ack });
    await refused(alice.se.call('pay', { ack: again.ack }), 'CHAIN_ACK_UNKNOWN');
    assert.equal((await snapshot(alice)).balance, 300n);
  });

  test('ack_fail: a declined payment gives the held amount back, and the payee never credits it later', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await fund(alice, 1_000n);
    const { txOff } = await alice.se.call('transfer', { payee: bob.account, amount: 400n, now: NOW });
    const { ack } = await bob.se.call('reject', { txOff, now: NOW });
    assert.equal(ack.ok, false);
    await refused(alice.se.call('pay', { ack }), 'CHAIN_ACK_INVALID');
    await alice.se.call('abort', { ack });
    assert.equal((await snapshot(alice)).balance, 1_000n);
    assert.equal((await snapshot(alice)).pending, 0n);
    const later = await bob.se.call('receive', { txOff, now: NOW });
    assert.equal(later.credited, false);
    assert.equal(later.ack.ok, false);
    assert.equal((await snapshot(bob)).balance, 0n);
  });

  test('a T_gen beyond the clock-drift bound is answered ack_fail and credits nothing', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await fund(alice, 1_000n);
    const { txOff } = await alice.se.call('transfer', { payee: bob.account, amount: 100n, now: NOW });
    const late = await bob.se.call('receive', { txOff, now: NOW + 301_000 });
    assert.equal(late.credited, false);
    assert.equal(late.ack.ok, false);
    assert.match(late.reason ?? '', /clock-drift/);
    assert.equal((await snapshot(bob)).incoming, 0);
  });
});

describe('attacks of section III-B, refused with nothing changed', () => {
  test('transaction data forgery: an altered amount, payee, time, counter or balance fails σ_1 / σ_att', async () => {
    const [alice, bob, mallory] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('mallory')]);
    await fund(alice, 1_000n);
    const { txOff } = await alice.se.call('transfer', { payee: bob.account, amount: 100n, now: NOW });
    const before = await snapshot(bob);
    const forgeries: TxOff[] = [
      altered(txOff, { amount: 900n }),
      altered(txOff, { tGen: txOff.payment.tGen + 1n }),
      altered(txOff, { counter: 5n }),
      { ...txOff, stateBalance: 100_000n },
      { ...txOff, signature: new Uint8Array(65).fill(1) },
      { ...txOff, attestation: txOff.signature },
    ];
    for (const forged of forgeries) {
      const answer = await bob.se.call('receive', { txOff: forged, now: NOW });
      assert.equal(answer.credited, false, JSON.stringify(answer.reason));
      assert.equal(answer.ack.ok, false);
    }
    assert.deepEqual(await snapshot(bob), before);
    // The payment swapped to another payee (a relay that swaps the address) is not for Bob and not valid for Mallory.
    await refused(bob.se.call('receive', { txOff: altered(txOff, { payee: mallory.account }), now: NOW }), 'CHAIN_NOT_PAYEE');
    const swapped = await mallory.se.call('receive', { txOff: altered(txOff, { payee: mallory.account }), now: NOW });
    assert.equal(swapped.credited, false);
    assert.equal((await snapshot(mallory)).balance, 0n);
  });

  test('a forged σ_att: an enclave key the root never certified, or a certified enclave named by a payment another key attested', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    const secp = suiteFor(nodeProvider, 'secp256k1');
    const enclave = signerFromSecret(secp, fromHex('31'.repeat(32)));
    const account = signerFromSecret(secp, fromHex('32'.repeat(32)));
    const fields = { payee: bob.account, amount: 50n, counter: 0n, tGen: BigInt(Math.floor(NOW / 1000)), kind: 0 as const, balance: 1_000_000n };
    // An emulated TEE with a key of its own, certified by an intermediary outside the root's hierarchy.
    const rogue = hierarchy('ed25519', 'rogue');
    const rogueCert = encodeCertificate(issueCertificate({ issuer: rogue.intermediary, issuerRole: 'intermediary', role: 'device', subject: enclave.publicKey, notBefore: T0, notAfter: NOW + 1_000_000, extensions: {} }));
    const uncertified = buildTxOff(DOMAIN, { enclave, account, certificate: rogueCert }, fields);
    await refusedAnswer(bob, uncertified);
    // Alice's genuine certificate, her enclave's address, and a σ_att made with another key.
    const borrowed = buildTxOff(DOMAIN, { enclave, account, certificate: alice.certificate }, fields);
    await refusedAnswer(bob, { ...borrowed, payment: { ...borrowed.payment, enclave: alice.enclave } });
    await refusedAnswer(bob, borrowed);
    assert.equal((await snapshot(bob)).balance, 0n);
  });

  test("another bank's payer: taken through that bank's certificate in the parameters, chained to the pinned root; refused without it, or with a rogue root's certificate of the same key", async () => {
    const bob = await makeWallet('bob');
    const secp = suiteFor(nodeProvider, 'secp256k1');
    const enclave = signerFromSecret(secp, fromHex('41'.repeat(32)));
    const account = signerFromSecret(secp, fromHex('42'.repeat(32)));
    const fields = { payee: bob.account, amount: 50n, counter: 0n, tGen: BigInt(Math.floor(NOW / 1000)), kind: 0 as const, balance: 1_000n };
    // Bank B, certified by the root Bob's TA pinned; its customer's enclave certified by B.
    const bankB = signer('chain-ta/bank-b');
    const bankBCert = encodeCertificate(certify({ issuer: pki.root, issuerRole: 'root', role: 'intermediary', subject: bankB, extensions: { name: 'Bank B' } }));
    const device = encodeCertificate(issueCertificate({ issuer: bankB, issuerRole: 'intermediary', role: 'device', subject: enclave.publicKey, notBefore: T0, notAfter: NOW + 1_000_000, extensions: {} }));
    const txOff = buildTxOff(DOMAIN, { enclave, account, certificate: device }, fields);
    // Parameters without B: its customer is refused.
    await refusedAnswer(bob, txOff);
    // The same key certified as an intermediary by another root, slipped into the parameters.
    const rogue = hierarchy('ed25519', 'chain-ta-rogue');
    const rogueCert = encodeCertificate(certify({ issuer: rogue.root, issuerRole: 'root', role: 'intermediary', subject: bankB, extensions: { name: 'Bank B' } }));
    await bob.se.call('setParams', { params: paramsFor({ block: 2n, banks: [rogueCert] }) });
    await refusedAnswer(bob, txOff);
    // B's own certificate under the pinned root: taken.
    await bob.se.call('setParams', { params: paramsFor({ block: 3n, banks: [rogueCert, bankBCert] }) });
    const answer = await bob.se.call('receive', { txOff, now: NOW });
    assert.equal(answer.credited, true, JSON.stringify(answer.reason));
    assert.equal((await snapshot(bob)).balance, 50n);
    // B revoked: the next parameters leave it out, and B's customers are refused again.
    await bob.se.call('setParams', { params: paramsFor({ block: 4n }) });
    await refusedAnswer(bob, buildTxOff(DOMAIN, { enclave, account, certificate: device }, { ...fields, counter: 1n }));
    assert.deepEqual((await bob.se.call('revoked', {})).banks, []);
  });

  test('a revoked enclave’s payment is refused once the TA learned of the revocation', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await fund(alice, 1_000n);
    await bob.se.call('setParams', { params: paramsFor({ block: 2n, revoked: [alice.enclave] }) });
    const { txOff } = await alice.se.call('transfer', { payee: bob.account, amount: 100n, now: NOW });
    const answer = await bob.se.call('receive', { txOff, now: NOW });
    assert.equal(answer.credited, false);
    assert.match(answer.reason ?? '', /revoked/);
    await refused(bob.se.call('setParams', { params: paramsFor({ block: 1n }) }), 'CHAIN_STALE');
    await refused(bob.se.call('setParams', { params: paramsFor({ block: 3n, chainId: 1n }) }), 'CHAIN_MISMATCH');
  });

  test('double deposit: the same tx_off replayed after it was settled is never credited again', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await fund(alice, 1_000n);
    const first = await pay(alice, bob, 100n);
    const second = await pay(alice, bob, 200n);
    assert.equal(second.answer.credited, true);
    // Older counters than the last seen one are replays, even once the stored payment is gone.
    await bob.se.call('finalize', { statement: statement(bob.account, [first.answer.ack, second.answer.ack].map((a) => ({ payment: a.payment, state: 'applied' as const }))) });
    assert.equal((await snapshot(bob)).incoming, 0);
    await refused(bob.se.call('receive', { txOff: first.txOff, now: NOW }), 'CHAIN_REPLAYED');
    await refused(bob.se.call('receive', { txOff: second.txOff, now: NOW }), 'CHAIN_REPLAYED');
    assert.equal((await snapshot(bob)).balance, 300n);
  });

  test('a tx_off older than the payers the TEE remembers is neither credited nor declined: it may have been taken and forgotten', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await fund(alice, 1_000n);
    // Bob credits the first; its ack_win never reaches Alice. The second never reaches Bob.
    const { txOff, answer } = await pay(alice, bob, 100n);
    const lost = (await alice.se.call('transfer', { payee: bob.account, amount: 50n, now: NOW })).txOff;
    // The chain settles the first; Bob's clock passes the drift bound, and he forgets Alice's counter.
    const later = NOW + 2 * DRIFT_S * 1000;
    await bob.se.call('setParams', { params: paramsFor({ block: 2n, at: later }) });
    await bob.se.call('finalize', { statement: statement(bob.account, [{ payment: answer.ack.payment, state: 'applied' }]) });
    const before = await snapshot(bob);
    assert.deepEqual([before.incoming, before.balance], [0, 100n]);
    // An ack_fail would give Alice back what Bob was paid (and freeze Bob for two acks on chain).
    for (const old of [txOff, lost]) {
      await refused(bob.se.call('receive', { txOff: old, now: later }), 'CHAIN_TX_STALE');
      await refused(bob.se.call('reject', { txOff: old, now: later }), 'CHAIN_TX_STALE');
    }
    assert.deepEqual(await snapshot(bob), before);
    assert.equal((await snapshot(alice)).pending, 150n, 'Alice holds both until the chain settles them');
  });

  test('an ack from anyone but the payee proves nothing (a relay answering for the payee)', async () => {
    const [alice, bob, mallory] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('mallory')]);
    await fund(alice, 1_000n);
    const { txOff } = await alice.se.call('transfer', { payee: bob.account, amount: 100n, now: NOW });
    // Mallory signs an ack_fail for Alice's payment to make her release the amount while Bob credits it.
    const secp = suiteFor(nodeProvider, 'secp256k1');
    const fake = buildAck(DOMAIN, signerFromSecret(secp, fromHex('41'.repeat(32))), txOff.payment, false);
    await refused(alice.se.call('abort', { ack: fake }), 'CHAIN_ACK_INVALID');
    await refused(alice.se.call('abort', { ack: { ...fake, payee: bob.account } }), 'CHAIN_ACK_INVALID');
    const other = await alice.se.call('transfer', { payee: mallory.account, amount: 50n, now: NOW });
    const mallorysAck = (await mallory.se.call('receive', { txOff: other.txOff, now: NOW })).ack;
    await refused(alice.se.call('pay', { ack: { ...mallorysAck, payment: paymentHash(txOff.payment) } }), 'CHAIN_ACK_INVALID');
    assert.equal((await snapshot(alice)).pending, 150n);
  });

  test('double spend by a cloned wallet: both copies sign the same counter, so the chain holds the proof', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await fund(alice, 1_000n);
    const copy = await alice.clone('alice-copy');
    const one = await pay(alice, bob, 800n);
    const two = await pay(copy, carol, 800n);
    // The TEE cannot stop a cloned state offline; both payees credit, and both payments carry counter 0.
    assert.equal(one.answer.credited && two.answer.credited, true);
    assert.equal(one.txOff.payment.counter, two.txOff.payment.counter);
    assert.notDeepEqual(paymentHash(one.txOff.payment), paymentHash(two.txOff.payment));
  });
});
