/**
 * Uploads of one chain of payments (alice pays carol, who had nothing on chain, and carol pays bob)
 * reaching OfflineAccounts in every order, on a real anvil: a payee's upload that lands before its
 * payer's own incoming payment waits there (owed) and a later upload applies it, so after a second
 * round everything is applied whatever the order. And the wallet's submission (`reconcileOnChain`)
 * of an upload whose gas was estimated before another uploader's transaction was mined: the item
 * then applies instead of waiting owed, which costs more gas than the estimate, so the first
 * transaction runs out of gas when mined; it is simulated and sent again and the upload settles.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { createWalletClient, custom, type Hex } from 'viem';
import { isTallyError } from '../../core/errors.ts';
import { confirmTransaction } from '../../issuer/plugin.ts';
import { startAnvilEnv, testAccount, type AnvilEnv } from './anvil-fixtures.ts';
import { offlineAccountsAbi } from './contracts.generated.ts';
import { signUpload, type Device, type UploadItem } from './upload-fixtures.ts';
import { reconcileOnChain } from './wallet-chain.ts';
import { eventNames, World } from './world-fixtures.ts';

const STATE = { owed: 2, applied: 3 } as const;
const STATUS = { open: 1 } as const;

let env: AnvilEnv;
let world: World;
let clean: Hex;
let alice: Device, bob: Device, carol: Device;
/** alice → carol 20 and carol → bob 10, each with its ack_win. */
let toCarol: UploadItem, toBob: UploadItem;
/** What each device's TEE uploads: alice her payment, carol both, bob his incoming one. */
let uploads: Record<'alice' | 'carol' | 'bob', readonly UploadItem[]>;

before(async () => {
  env = await startAnvilEnv();
  world = new World(env);
  [alice, bob, carol] = ['alice', 'bob', 'carol'].map((label) => world.device(label)) as [Device, Device, Device];
  await world.register(alice, bob, carol);
  await world.deposit(alice.address, 100n);
  // alice has paid before (her account is bound); carol has nothing on chain, not even her binding.
  await world.reconcile(bob, [await world.paid(alice, bob, { amount: 5n, counter: 0n, stateBalance: 100n }, true)]);
  toCarol = await world.paid(alice, carol, { amount: 20n, counter: 1n, stateBalance: 95n }, true);
  toBob = await world.paid(carol, bob, { amount: 10n, counter: 0n, stateBalance: 20n }, true);
  uploads = { alice: [toCarol], carol: [toCarol, toBob], bob: [toBob] };
  clean = await env.snapshot();
});

after(async () => {
  await env?.close();
});

beforeEach(async () => {
  await env.revert(clean);
  clean = await env.snapshot();
});

afterEach(async () => {
  await world.assertConservation();
});

const devices = () => ({ alice, carol, bob });

/** Every order of the three uploaders. */
function orders(): (keyof typeof uploads)[][] {
  const names = ['alice', 'carol', 'bob'] as const;
  const out: (keyof typeof uploads)[][] = [];
  for (const a of names) for (const b of names) for (const c of names) if (new Set([a, b, c]).size === 3) out.push([a, b, c]);
  return out;
}

/** Both payments applied, and the balances moved once. */
async function assertSettled(label: string): Promise<void> {
  assert.equal(await world.paymentState(alice.address, 1n), STATE.applied, `${label}: alice → carol applied`);
  assert.equal(await world.paymentState(carol.address, 0n), STATE.applied, `${label}: carol → bob applied`);
  assert.deepEqual([await world.balance(alice), await world.balance(carol), await world.balance(bob)], [75n, 10n, 15n], label);
  for (const device of [alice, carol, bob]) assert.equal((await world.account(device.address)).status, STATUS.open, `${label}: ${device.label} is not frozen`);
}

describe('OfflineAccounts: one chain of payments uploaded in every order', () => {
  for (const order of orders()) {
    it(`${order.join(', ')}, then everyone again: both payments applied, nobody frozen`, async () => {
      for (const name of order) await world.reconcile(devices()[name], uploads[name]);
      for (const name of order) await world.reconcile(devices()[name], uploads[name]);
      await assertSettled(order.join(', '));
    });
  }

  it("bob's upload first: carol's payment waits owed (carol has nothing yet), and carol's own upload applies it", async () => {
    const first = await world.reconcile(bob, uploads.bob);
    assert.deepEqual(eventNames(first), ['Bound', 'Recorded', 'Reconciled']);
    assert.equal(await world.paymentState(carol.address, 0n), STATE.owed);
    await world.reconcile(alice, uploads.alice);
    assert.equal(await world.paymentState(carol.address, 0n), STATE.owed, "alice's upload does not carry carol's payment");
    assert.deepEqual(eventNames(await world.reconcile(carol, uploads.carol)), ['Duplicate', 'Applied', 'Reconciled']);
    await assertSettled('bob, alice, carol');
  });
});

describe("the wallet's reconcile when another upload is mined between its gas estimate and its block", () => {
  it("bob's upload estimated while carol's payment would wait owed, mined after alice's upload funded carol: sent again, it applies", async () => {
    // bob's wallet sends his upload from its own on-chain account; the world's relayer sends alice's.
    const relayer = testAccount('bob/wallet');
    await env.wallet(relayer);
    const sent: Hex[] = [];
    let raced = false;
    // bob's wallet's transport: its first raw transaction waits until alice's upload is mined.
    const transport = custom({
      request: async ({ method, params }: { method: string; params?: unknown }) => {
        if (method === 'eth_sendRawTransaction' && !raced) {
          raced = true;
          await world.reconcile(alice, uploads.alice);
        }
        const answer = (await env.publicClient.request({ method, params } as never)) as unknown;
        if (method === 'eth_sendRawTransaction') sent.push(answer as Hex);
        return answer;
      },
    });
    const walletClient = createWalletClient({ chain: env.chain, transport, account: relayer, pollingInterval: 10 });
    const clients = { publicClient: env.publicClient, walletClient };
    const signature = await signUpload(world.domain, bob.enclave, bob.address, uploads.bob);
    const done = await reconcileOnChain(clients, { token: env.token, contract: env.accounts }, { account: bob.address, items: uploads.bob, signature });
    assert.ok(raced, "alice's upload was mined between bob's estimate and his transaction");
    assert.equal(sent.length, 2, 'bob sent his upload twice');
    const [first, second] = sent as [Hex, Hex];
    const firstReceipt = await env.publicClient.getTransactionReceipt({ hash: first });
    const firstSent = await env.publicClient.getTransaction({ hash: first });
    assert.equal(firstReceipt.status, 'reverted', 'the first transaction reverted when mined');
    assert.equal(firstReceipt.gasUsed, firstSent.gas, 'it ran out of gas: its limit was estimated against the state before alice’s upload');
    await assert.rejects(confirmTransaction(clients, first), (e: unknown) => isTallyError(e, 'CHAIN_REVERTED') && e.details.reason === 'ran out of gas when mined', 'its error says it ran out of gas');
    assert.equal(done.transaction, second);
    assert.ok(done.accepted);
    assert.deepEqual(done.events, ['Bound', 'Applied', 'Reconciled'], 'carol, funded by then, pays bob at once');
    assert.ok(done.gasUsed > firstSent.gas, 'applying costs more than waiting owed would have');
    assert.equal(await world.paymentState(carol.address, 0n), STATE.applied);
    assert.deepEqual([await world.balance(carol), await world.balance(bob)], [10n, 15n]);
  });

  it('a call that a changed state now refuses is not sent again: its simulation names the contract’s error', async () => {
    // bob's wallet sends his upload from its own on-chain account; the world's relayer sends alice's.
    const relayer = testAccount('bob/wallet');
    await env.wallet(relayer);
    let sends = 0;
    const revoke = async () => {
      const bank = await env.wallet(env.bank);
      // bob's enclave revoked: his upload signature no longer recovers to a registered enclave.
      await world.mined(await bank.writeContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'revokeEnclave', args: [bob.enclave.address] }));
    };
    const transport = custom({
      request: async ({ method, params }: { method: string; params?: unknown }) => {
        if (method === 'eth_sendRawTransaction' && sends++ === 0) await revoke();
        return (await env.publicClient.request({ method, params } as never)) as unknown;
      },
    });
    const walletClient = createWalletClient({ chain: env.chain, transport, account: relayer, pollingInterval: 10 });
    const signature = await signUpload(world.domain, bob.enclave, bob.address, uploads.bob);
    await assert.rejects(
      reconcileOnChain({ publicClient: env.publicClient, walletClient }, { token: env.token, contract: env.accounts }, { account: bob.address, items: uploads.bob, signature }),
      (e: unknown) => isTallyError(e, 'CHAIN_REVERTED') && /UnknownUploadSigner/.test(e.message) && !/when mined/.test(e.message),
    );
    assert.equal(sends, 1, 'sent once: the second simulation refused it');
  });
});
