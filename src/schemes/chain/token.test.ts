/**
 * TallyToken on a real anvil: metadata, minting by the bank only, transfer, approve, transferFrom
 * (finite and unlimited allowances), and every refusal; the supply is what its holders hold.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { parseEventLogs, type Address, type Hex } from 'viem';
import type { PrivateKeyAccount } from 'viem/accounts';
import { startAnvilEnv, testAccount, TOKEN_DECIMALS, type AnvilEnv } from './anvil-fixtures.ts';
import { tallyTokenAbi } from './contracts.generated.ts';
import { assertReverts, World } from './world-fixtures.ts';

const ZERO: Address = '0x0000000000000000000000000000000000000000';
const MAX = 2n ** 256n - 1n;

let env: AnvilEnv;
let world: World;
let clean: Hex;
const [ann, ben, cat] = [testAccount('ann'), testAccount('ben'), testAccount('cat')];

before(async () => {
  env = await startAnvilEnv();
  world = new World(env);
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

/** Sends a token call as `from`. */
async function send(from: PrivateKeyAccount, functionName: 'transfer' | 'approve', args: readonly [Address, bigint]): Promise<Hex> {
  const wallet = await env.wallet(from);
  return wallet.writeContract({ address: env.token, abi: tallyTokenAbi, functionName, args });
}

async function sendFrom(spender: PrivateKeyAccount, from: Address, to: Address, amount: bigint): Promise<Hex> {
  const wallet = await env.wallet(spender);
  return wallet.writeContract({ address: env.token, abi: tallyTokenAbi, functionName: 'transferFrom', args: [from, to, amount] });
}

function allowance(owner: Address, spender: Address): Promise<bigint> {
  return env.publicClient.readContract({ address: env.token, abi: tallyTokenAbi, functionName: 'allowance', args: [owner, spender] });
}

describe('TallyToken', () => {
  it('has the name, symbol, decimals and minter it was made with, and no supply', async () => {
    const read = (functionName: 'name' | 'symbol' | 'decimals' | 'minter' | 'totalSupply') => env.publicClient.readContract({ address: env.token, abi: tallyTokenAbi, functionName });
    assert.deepEqual([await read('name'), await read('symbol'), await read('decimals'), await read('minter'), await read('totalSupply')], ['Tally euro', 'EUR', TOKEN_DECIMALS, env.bank.address, 0n]);
  });

  it('mints for the bank only, never to the zero address', async () => {
    await world.mint(ann.address, 1000n);
    assert.equal(await world.tokenBalance(ann.address), 1000n);
    const stranger = await env.wallet(ann);
    await assertReverts(stranger.writeContract({ address: env.token, abi: tallyTokenAbi, functionName: 'mint', args: [ann.address, 1n] }), 'NotMinter');
    const bank = await env.wallet(env.bank);
    await assertReverts(bank.writeContract({ address: env.token, abi: tallyTokenAbi, functionName: 'mint', args: [ZERO, 1n] }), 'ZeroAddress');
    await world.assertConservation();
  });

  it('transfers what the sender holds, and emits Transfer', async () => {
    await world.mint(ann.address, 100n);
    const receipt = await world.mined(await send(ann, 'transfer', [ben.address, 60n]));
    const events = parseEventLogs({ abi: tallyTokenAbi, logs: receipt.logs });
    assert.deepEqual(events.map((e) => [e.eventName, e.args]), [['Transfer', { from: ann.address, to: ben.address, value: 60n }]]);
    assert.deepEqual([await world.tokenBalance(ann.address), await world.tokenBalance(ben.address)], [40n, 60n]);
    await assertReverts(send(ann, 'transfer', [ben.address, 41n]), 'InsufficientBalance');
    await assertReverts(send(ann, 'transfer', [ZERO, 1n]), 'ZeroAddress');
    // A transfer to oneself leaves the balance as it was.
    await world.mined(await send(ann, 'transfer', [ann.address, 40n]));
    assert.equal(await world.tokenBalance(ann.address), 40n);
    await world.assertConservation();
  });

  it('lets a spender take up to its allowance, which goes down, and refuses beyond it', async () => {
    await world.mint(ann.address, 100n);
    const approved = await world.mined(await send(ann, 'approve', [ben.address, 70n]));
    assert.deepEqual(parseEventLogs({ abi: tallyTokenAbi, logs: approved.logs }).map((e) => e.args), [{ owner: ann.address, spender: ben.address, value: 70n }]);
    await world.mined(await sendFrom(ben, ann.address, cat.address, 50n));
    assert.equal(await allowance(ann.address, ben.address), 20n);
    await assertReverts(sendFrom(ben, ann.address, cat.address, 21n), 'InsufficientAllowance');
    await assertReverts(sendFrom(cat, ann.address, cat.address, 1n), 'InsufficientAllowance');
    await assertReverts(send(ann, 'approve', [ZERO, 1n]), 'ZeroAddress');
    await world.mined(await send(ann, 'approve', [ben.address, 500n]));
    await assertReverts(sendFrom(ben, ann.address, cat.address, 51n), 'InsufficientBalance');
    assert.equal(await allowance(ann.address, ben.address), 500n, 'a refused transferFrom leaves the allowance');
    assert.deepEqual([await world.tokenBalance(ann.address), await world.tokenBalance(cat.address)], [50n, 50n]);
    await world.assertConservation();
  });

  it('keeps an unlimited allowance unlimited', async () => {
    await world.mint(ann.address, 100n);
    await world.mined(await send(ann, 'approve', [ben.address, MAX]));
    await world.mined(await sendFrom(ben, ann.address, ben.address, 100n));
    assert.equal(await allowance(ann.address, ben.address), MAX);
    assert.equal(await world.tokenBalance(ben.address), 100n);
    await world.assertConservation();
  });
});
