/**
 * chain-tee through the issuer node and its embedded anvil, with real trusted apps: the contracts
 * deployed at start, devices provisioned and their enclaves registered on chain, deposits credited
 * against the node's receipts, offline payments (with a payee that had no deposit), reconciliation
 * both ways, withdrawal and closing; the chain's audit balanced after each scenario. Then the
 * attacks the chain must catch: a replayed upload, a cloned wallet's fork, a revoked device.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fromBase64url, fromHex, toHex } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { checkSigned, paramsBodyCodec, paramsCodec, PARAMS_TAG } from './messages.ts';
import { chainNode } from './node-fixtures.ts';
import { uploadItem } from './upload.ts';
import { accountOnChain, reconcileOnChain, tokenBalance } from './wallet-chain.ts';

after(() => closeTestTemplates());

const status = (c: { se: { call(name: 'status', input: Record<string, never>): Promise<{ balance: bigint; pending: bigint; status: string; outgoing: number; incoming: number }> } }) => c.se.call('status', {});

// The chain holds the money here; the node's SQL keeps only deployments, enclaves and mints. One
// backend covers it: PostgreSQL when the suite has it (as CI does), else PGlite.
const ready = testBackends().filter((b) => !b.skip);
for (const backend of [ready.find((b) => b.kind === 'postgres') ?? ready[0]].filter((b) => b !== undefined)) {
  describe(`chain-tee on the node (${backend.kind})`, { skip: backend.skip }, () => {
    test('deposit, offline payments with redistribution, reconciliation, withdrawal and closing: the chain agrees with the TEEs, the audit balances', async () => {
      const n = await chainNode(backend);
      try {
        const info = (await (await n.h.send('GET', '/v1/info')).json()) as { chain: { chainId: number; embedded: boolean }; schemes: { chain: { contract: string } } };
        assert.equal(info.chain.embedded, true);
        assert.equal(info.schemes.chain.contract, n.contracts.contract);
        const [alice, bob, carol] = [await n.client('alice'), await n.client('bob'), await n.client('carol')];
        await n.mint(alice, '100.00');
        await n.deposit(alice, 6_000n);
        assert.equal((await status(alice)).balance, 6_000n);
        assert.equal(await tokenBalance(alice.clients, n.contracts, alice.eoa.address), 4_000n);
        // Offline: Alice pays Bob, who never deposited, and Bob pays Carol from it.
        const one = await n.pay(alice, bob, 2_500n);
        await alice.se.call('pay', { ack: one.answer.ack });
        const two = await n.pay(bob, carol, 1_000n);
        await bob.se.call('pay', { ack: two.answer.ack });
        // Bob settles first: his payment to Carol waits on chain until his receipt from Alice is applied (same upload, received first).
        await n.sync(bob);
        await n.sync(alice);
        await n.sync(carol);
        for (const [who, minor] of [[alice, 3_500n], [bob, 1_500n], [carol, 1_000n]] as const) {
          assert.equal((await accountOnChain(who.clients, n.contracts, who.account)).balance, minor, who.name);
          const s = await status(who);
          assert.equal(s.balance, minor, who.name);
          assert.equal(s.outgoing + s.incoming, 0, `${who.name} holds nothing unsettled`);
        }
        await n.assertBalanced();
        // Carol withdraws to her on-chain account; Bob closes his account to his.
        await carol.se.call('withdraw', { to: fromHex(carol.eoa.address.slice(2)), amount: 400n, now: n.h.now() });
        await n.sync(carol);
        assert.equal(await tokenBalance(carol.clients, n.contracts, carol.eoa.address), 400n);
        assert.equal((await status(carol)).balance, 600n);
        const closing = await bob.se.call('logout', { to: fromHex(bob.eoa.address.slice(2)), now: n.h.now() });
        assert.equal(closing.amount, 1_500n);
        await n.sync(bob);
        assert.equal((await status(bob)).status, 'closed');
        await bob.se.call('clean', {});
        assert.equal((await accountOnChain(bob.clients, n.contracts, bob.account)).status, 3);
        assert.equal(await tokenBalance(bob.clients, n.contracts, bob.eoa.address), 1_500n);
        await n.assertBalanced();
      } finally {
        await n.h.close();
      }
    });

    test('an address whose mixed case does not match its EIP-55 checksum is refused as a bad body (400), not passed to the chain (500, 502); nothing moves', async () => {
      const n = await chainNode(backend);
      try {
        // Found by the fuzzer: a valid address with one letter's case changed.
        const bad = '0x30c04eaBb27A50Fd7E2ddcFBbfa4fA1Ae8facCcA';
        // The chain's part of the audit says what it read (or why it could not), so a failure shows it.
        const before = await n.assertBalanced();
        const mint = await n.h.asOperator('POST', '/v1/chain/operator/mint', { to: bad, amount: '1.00' });
        await expectError(mint, 400, 'BODY_INVALID');
        const statement = await n.h.asOperator('POST', '/v1/chain/statements', { account: bad, payments: [] });
        await expectError(statement, 400, 'BODY_INVALID');
        // The same address in lower case is an address: the route takes it past the body check.
        const lower = await n.h.asOperator('POST', '/v1/chain/operator/mint', { to: bad.toLowerCase(), amount: '1.00' });
        assert.notEqual(lower.status, 400, await lower.clone().text());
        assert.ok(lower.status < 500, await lower.clone().text());
        const after = await n.assertBalanced();
        // Only the lower-case mint moved anything: the bank's mints and the supply grew by 1.00.
        const figures = (audit: typeof before) => {
          const details = (audit.schemes.find((s) => s.scheme === 'chain') as { details?: { mintedHere?: string; supply?: string } } | undefined)?.details;
          return [details?.mintedHere, details?.supply];
        };
        assert.deepEqual(figures(before), ['0.00', '0.00']);
        assert.deepEqual(figures(after), ['1.00', '1.00']);
      } finally {
        await n.h.close();
      }
    });

    test('a deposit is credited only against the node’s receipt of a mined deposit; replays and other transactions are refused', async () => {
      const n = await chainNode(backend);
      try {
        const alice = await n.client('alice');
        await n.mint(alice, '10.00');
        const mintTx = (await n.chain.publicClient.getBlock({ includeTransactions: true })).transactions[0];
        const notDeposit = await n.h.send('GET', `/v1/chain/deposits/${typeof mintTx === 'string' ? mintTx : mintTx?.hash}`);
        assert.equal(notDeposit.status, 404);
        assert.equal((await n.h.send('GET', `/v1/chain/deposits/0x${'ab'.repeat(32)}`)).status, 404);
        assert.equal((await n.h.send('GET', '/v1/chain/deposits/0x1234')).status, 400);
        await n.deposit(alice, 500n);
        await assert.rejects(n.deposit(alice, 20_000n), (e: unknown) => isTallyError(e, 'CHAIN_REVERTED') && /InsufficientBalance/.test(e.message));
        assert.equal((await status(alice)).balance, 500n);
        // The parameters verify under the node's certified key and name this chain.
        const { params } = (await (await n.h.send('GET', '/v1/chain/params')).json()) as { params: string };
        const body = checkSigned(n.h.node.services.provider, n.h.node.services.identity.issuerNode.signer.publicKey, paramsBodyCodec, PARAMS_TAG, paramsCodec.decode(decodeCbor(fromBase64url(params))));
        assert.equal(body.chainId, BigInt(n.chain.chainId));
        await n.assertBalanced();
      } finally {
        await n.h.close();
      }
    });

    test('double deposit and double spend: an upload sent twice moves money once; a cloned wallet’s fork freezes it on chain and in its TEE, and loss stays within its deposit', async () => {
      const n = await chainNode(backend);
      try {
        const [alice, bob, carol] = [await n.client('alice'), await n.client('bob'), await n.client('carol')];
        await n.mint(alice, '50.00');
        await n.deposit(alice, 1_000n);
        const copy = await n.clone(alice, 'alice-copy');
        const toBob = await n.pay(alice, bob, 800n);
        const toCarol = await n.pay(copy, carol, 800n);
        assert.equal(toBob.txOff.payment.counter, toCarol.txOff.payment.counter);
        // Bob's wallet app submits his upload twice (a replay): the payment moves once.
        const upload = await bob.se.call('onchainUpdate', {});
        const submitted = { account: bob.account, items: upload.items.map((i) => uploadItem(i.txOff, i.ack)), signature: `0x${toHex(upload.signature)}` as const };
        const first = await reconcileOnChain(bob.clients, n.contracts, submitted);
        assert.deepEqual(first.events.filter((e) => e === 'Applied'), ['Applied']);
        const replayed = await reconcileOnChain(bob.clients, n.contracts, submitted);
        assert.deepEqual(replayed.events.filter((e) => e !== 'Reconciled'), ['Duplicate']);
        assert.equal((await accountOnChain(bob.clients, n.contracts, bob.account)).balance, 800n);
        await n.sync(bob);
        assert.equal((await status(bob)).incoming, 0);
        await n.sync(carol);
        assert.equal((await accountOnChain(alice.clients, n.contracts, alice.account)).status, 2, 'the fork froze Alice on chain');
        assert.equal((await accountOnChain(carol.clients, n.contracts, carol.account)).balance, 200n, 'Carol is honoured up to what Alice held');
        const carolAfter = await status(carol);
        assert.equal(carolAfter.balance, 200n, "Carol's TEE took back what the chain did not honour");
        await n.sync(alice);
        assert.equal((await status(alice)).status, 'frozen');
        await assert.rejects(alice.se.call('transfer', { payee: fromHex(bob.account.slice(2)), amount: 1n, now: n.h.now() }), /froze/);
        await n.assertBalanced();
      } finally {
        await n.h.close();
      }
    });

    test('a revoked device: its enclave is revoked on chain at the next parameters, and payees that synced refuse it', async () => {
      const n = await chainNode(backend);
      try {
        const [alice, bob] = [await n.client('alice'), await n.client('bob')];
        await n.mint(alice, '10.00');
        await n.deposit(alice, 500n);
        const revoked = await n.h.asOperator('POST', '/v1/operator/revoke', { keyId: alice.deviceId, reason: 'lost' });
        assert.equal(revoked.status, 200, await revoked.clone().text());
        await n.giveParams(bob.se);
        const { answer } = await n.pay(alice, bob, 100n);
        assert.equal(answer.credited, false);
        assert.match(answer.reason ?? '', /revoked/);
        assert.equal(await n.chain.publicClient.readContract({ address: n.contracts.contract, abi: (await import('./contracts.generated.ts')).offlineAccountsAbi, functionName: 'registered', args: [alice.enclave] }), false);
        const again = await n.h.signed(alice.user, 'POST', '/v1/chain/enclaves', { device: alice.deviceId }, n.key());
        assert.equal(again.status, 403, await again.clone().text());
        await n.assertBalanced();
      } finally {
        await n.h.close();
      }
    });
  });
}
