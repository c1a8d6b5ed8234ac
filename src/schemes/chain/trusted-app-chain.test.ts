/**
 * The chain-tee trusted app's side of the chain: deposits credited only against the node's receipt
 * (coin forgery), the upload the contract checks, the statement that frees, restores, takes back
 * and freezes, the withdrawal, and the account's closing (logout, clean).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fromHex } from '../../core/bytes.ts';
import { recoverEthereumAddress } from '../../core/crypto/ethereum.ts';
import { isTallyError } from '../../core/errors.ts';
import { signer } from '../../pki/test-fixtures.ts';
import { depositBodyCodec, DEPOSIT_TAG, signed } from './messages.ts';
import { uploadItemOf } from './trusted-app-chain.ts';
import { CHAIN_ID, CONTRACT, depositReceipt, fund, makeWallet, NOW, statement, type Wallet } from './ta-fixtures.ts';
import { paymentHash, signingInput, uploadHash, uploadItems } from './typed-data.ts';

const DOMAIN = { chainId: CHAIN_ID, contract: CONTRACT };
const ONCHAIN = fromHex('00000000000000000000000000000000000000b0');

async function refused(call: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(call, (e: unknown) => isTallyError(e, 'SE_REJECTED') && (e.details as { reason?: string }).reason === code, `expected ${code}`);
}

const status = (w: Wallet) => w.se.call('status', {});

async function paid(payer: Wallet, payee: Wallet, amount: bigint) {
  const { txOff } = await payer.se.call('transfer', { payee: payee.account, amount, now: NOW });
  const { ack } = await payee.se.call('receive', { txOff, now: NOW });
  return { txOff, ack, hash: paymentHash(txOff.payment) };
}

describe('deposits (coin forgery)', () => {
  test('a deposit is credited against the node’s receipt, once and in order', async () => {
    const alice = await makeWallet('alice');
    await alice.se.call('deposit', { receipt: depositReceipt(alice.account, 0, 5_000n) });
    await refused(alice.se.call('deposit', { receipt: depositReceipt(alice.account, 0, 5_000n) }), 'CHAIN_REPLAYED');
    await refused(alice.se.call('deposit', { receipt: depositReceipt(alice.account, 2, 5_000n) }), 'CHAIN_DEPOSIT_GAP');
    await alice.se.call('deposit', { receipt: depositReceipt(alice.account, 1, 1_000n) });
    const s = await status(alice);
    assert.equal(s.balance, 6_000n);
    assert.equal(s.deposits, 2);
  });

  test('a deposit without a receipt, an inflated one, or another account’s or chain’s is refused', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    const before = await status(alice);
    // Signed by a key the TA never pinned (the REE making up a receipt).
    const forged = signed(depositBodyCodec, signer('someone'), DEPOSIT_TAG, depositReceipt(alice.account, 0, 5_000n).body);
    await refused(alice.se.call('deposit', { receipt: forged }), 'SIGNATURE_INVALID');
    const genuine = depositReceipt(alice.account, 0, 5_000n);
    await refused(alice.se.call('deposit', { receipt: { ...genuine, body: { ...genuine.body, amount: 50_000n } } }), 'SIGNATURE_INVALID');
    await refused(alice.se.call('deposit', { receipt: depositReceipt(bob.account, 0, 5_000n) }), 'CHAIN_MISMATCH');
    await refused(alice.se.call('deposit', { receipt: depositReceipt(alice.account, 0, 5_000n, { chainId: 1n }) }), 'CHAIN_MISMATCH');
    assert.deepEqual(await status(alice), before);
  });
});

describe('reconciliation', () => {
  test('the upload lists what was received, then the account’s own payments in counter order, signed by the enclave', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await fund(alice, 1_000n);
    await fund(bob, 1_000n);
    const toBob = await paid(alice, bob, 300n);
    const fromBob = await paid(bob, carol, 100n);
    await bob.se.call('pay', { ack: fromBob.ack });
    const lost = await bob.se.call('transfer', { payee: carol.account, amount: 50n, now: NOW });
    const upload = await bob.se.call('onchainUpdate', {});
    assert.deepEqual(upload.account, bob.account);
    assert.deepEqual(upload.items.map((i) => paymentHash(i.txOff.payment)), [toBob.hash, fromBob.hash, paymentHash(lost.txOff.payment)]);
    assert.equal(upload.items[2]?.ack, undefined);
    const digest = uploadHash({ account: bob.account, items: uploadItems(upload.items.map(uploadItemOf)) });
    assert.deepEqual(recoverEthereumAddress(upload.signature, signingInput(DOMAIN, digest)), bob.enclave);
  });

  test('a statement frees what the chain applied, gives back what it failed, keeps what it only recorded', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await fund(alice, 1_000n);
    const settled = await paid(alice, bob, 100n);
    await alice.se.call('pay', { ack: settled.ack });
    const lostAck = await alice.se.call('transfer', { payee: carol.account, amount: 200n, now: NOW }); // never reached Carol
    const waiting = await alice.se.call('transfer', { payee: bob.account, amount: 300n, now: NOW });
    assert.equal((await status(alice)).pending, 500n);
    const out = await alice.se.call('finalize', {
      statement: statement(alice.account, [
        { payment: settled.hash, state: 'applied' },
        { payment: paymentHash(lostAck.txOff.payment), state: 'voided' },
        { payment: paymentHash(waiting.txOff.payment), state: 'recorded' },
      ]),
    });
    assert.equal(out.freed, 2);
    assert.equal(out.restored, 200n);
    const s = await status(alice);
    assert.equal(s.balance, 600n);
    assert.equal(s.pending, 300n);
    assert.equal(s.outgoing, 1);
    // An older statement, or one the node did not sign, is refused.
    await refused(alice.se.call('finalize', { statement: statement(alice.account, [], { block: 9n }) }), 'CHAIN_STALE');
    const forged = statement(alice.account, [{ payment: paymentHash(waiting.txOff.payment), state: 'failed' }], { block: 11n });
    await refused(alice.se.call('finalize', { statement: { ...forged, signature: new Uint8Array(64) } }), 'SIGNATURE_INVALID');
    await refused(alice.se.call('finalize', { statement: statement(bob.account, [], { block: 11n }) }), 'CHAIN_MISMATCH');
  });

  test('what the chain honoured in part (a forked payer) is taken back from the payee, beyond its balance as debt', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await fund(alice, 1_000n);
    const received = await paid(alice, bob, 800n);
    const spent = await paid(bob, carol, 700n);
    await bob.se.call('pay', { ack: spent.ack });
    const out = await bob.se.call('finalize', { statement: statement(bob.account, [{ payment: received.hash, state: 'applied', missing: 300n }]) });
    assert.equal(out.charged, 300n);
    const s = await status(bob);
    assert.equal(s.balance, 0n);
    assert.equal(s.debt, 200n);
    // Later credits pay the debt first.
    await fund(bob, 250n);
    assert.equal((await status(bob)).balance, 50n);
    assert.equal((await status(bob)).debt, 0n);
  });

  test('a statement that the chain froze the account freezes the TA: no payment out, none in, no closing', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await fund(alice, 1_000n);
    await fund(bob, 1_000n);
    const out = await alice.se.call('finalize', { statement: statement(alice.account, [], { status: 'frozen' }) });
    assert.equal(out.status, 'frozen');
    await refused(alice.se.call('transfer', { payee: bob.account, amount: 1n, now: NOW }), 'CHAIN_FROZEN');
    await refused(alice.se.call('withdraw', { to: ONCHAIN, amount: 1n, now: NOW }), 'CHAIN_FROZEN');
    await refused(alice.se.call('logout', { to: ONCHAIN, now: NOW }), 'CHAIN_FROZEN');
    const { txOff } = await bob.se.call('transfer', { payee: alice.account, amount: 5n, now: NOW });
    await refused(alice.se.call('receive', { txOff, now: NOW }), 'CHAIN_FROZEN');
    // An open statement later does not thaw it.
    await alice.se.call('finalize', { statement: statement(alice.account, [], { block: 11n }) });
    assert.equal((await status(alice)).status, 'frozen');
  });
});

describe('withdrawal and closing', () => {
  test('a withdrawal is a signed payment to an on-chain address; its amount leaves the balance at once', async () => {
    const alice = await makeWallet('alice');
    await fund(alice, 1_000n);
    const { txOff } = await alice.se.call('withdraw', { to: ONCHAIN, amount: 400n, now: NOW });
    assert.equal(txOff.payment.kind, 1);
    assert.deepEqual(txOff.payment.payee, ONCHAIN);
    assert.equal((await status(alice)).balance, 600n);
    await refused(alice.se.call('withdraw', { to: ONCHAIN, amount: 601n, now: NOW }), 'INSUFFICIENT_FUNDS');
    // Pay-outs the contract would hold against this TEE (and freeze it for) are refused here first.
    await refused(alice.se.call('withdraw', { to: new Uint8Array(20), amount: 1n, now: NOW }), 'CHAIN_PAYEE_INVALID');
    await refused(alice.se.call('withdraw', { to: CONTRACT, amount: 1n, now: NOW }), 'CHAIN_PAYEE_INVALID');
    await refused(alice.se.call('transfer', { payee: new Uint8Array(20), amount: 1n, now: NOW }), 'CHAIN_PAYEE_INVALID');
    await alice.se.call('finalize', { statement: statement(alice.account, [{ payment: paymentHash(txOff.payment), state: 'applied' }]) });
    assert.equal((await status(alice)).outgoing, 0);
  });

  test('logout waits for pending acks, closes the whole balance, and clean deletes the key only once the chain closed it', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await fund(alice, 1_000n);
    const pending = await alice.se.call('transfer', { payee: bob.account, amount: 100n, now: NOW });
    await refused(alice.se.call('logout', { to: ONCHAIN, now: NOW }), 'CHAIN_PENDING');
    const { ack } = await bob.se.call('receive', { txOff: pending.txOff, now: NOW });
    await alice.se.call('pay', { ack });
    const closing = await alice.se.call('logout', { to: ONCHAIN, now: NOW });
    assert.equal(closing.amount, 900n);
    assert.equal(closing.txOff?.payment.kind, 2);
    assert.equal((await status(alice)).status, 'closing');
    await refused(alice.se.call('transfer', { payee: bob.account, amount: 1n, now: NOW }), 'CHAIN_CLOSED');
    await refused(alice.se.call('clean', {}), 'CHAIN_NOT_CLOSED');
    const hashes = [paymentHash(pending.txOff.payment), paymentHash((closing.txOff as NonNullable<typeof closing.txOff>).payment)];
    await alice.se.call('finalize', { statement: statement(alice.account, hashes.map((payment) => ({ payment, state: 'applied' as const })), { status: 'closed' }) });
    assert.equal((await status(alice)).status, 'closed');
    const cleaned = await alice.se.call('clean', {});
    assert.deepEqual(cleaned.account, alice.account);
    assert.equal((await status(alice)).account, undefined);
    await refused(alice.se.call('transfer', { payee: bob.account, amount: 1n, now: NOW }), 'CHAIN_NO_ACCOUNT');
  });
});
