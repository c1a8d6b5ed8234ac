/**
 * The online side of chain-tee's simulation, as a wallet does it (node-fixtures.ts's steps, on the
 * sim's node and chain): the on-chain deposit into the offline account and its credit in the TEE
 * against the node's receipt (Algorithm 3 `deposit`); the reconciliation: fresh parameters, the
 * TEE's signed upload sent to `reconcile`, the node's statement back to the TEE (`finalize`,
 * `freeze`); the withdrawal and the closing (`withdraw`, `logout`, `clean`), paid out when
 * uploaded. Faults: the upload interrupted after the chain took it (the statement never reaches
 * the TEE; the next sync uploads again and the chain answers Duplicate), a deposit whose receipt
 * never reached the TEE (credited at the next sync), SE crashes at every commit.
 */
import { fromBase64url, fromHex, toHex } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { seRefusal } from '../../sim/sim/plugin.ts';
import { depositReceiptCodec, paramsCodec, statementCodec } from './messages.ts';
import { committed, errorCode, status, type ChainSim, type Holder, type Party } from './sim-context.ts';
import { readChain } from './sim-invariants.ts';
import { statementQuery, uploadItem } from './upload.ts';
import { depositOnChain, reconcileOnChain } from './wallet-chain.ts';

/** Rounds of upload and statement in one sync (each frees up to 64 items). */
const SYNC_ROUNDS_MAX = 8;

const hex = (bytes: Uint8Array): `0x${string}` => `0x${toHex(bytes)}`;

/** The node's signed parameters, given to a TA (refused by a frozen or closed one only for its own reasons). */
export async function giveParams(sim: ChainSim, party: Party): Promise<void> {
  const answer = await sim.node.request(party.holder.user, 'GET', '/v1/chain/params');
  if (answer.status !== 200) sim.world.violated('node', `GET /v1/chain/params answered ${answer.status} ${errorCode(answer.body)}`);
  const params = paramsCodec.decode(decodeCbor(fromBase64url((answer.body as { params: string }).params)), 'params');
  await committed(sim, party.el, (requestId) => party.el.se.call('setParams', { params }, { requestId }));
}

/** Credits in the TA the deposits of `transactions` (each receipt once: one already credited is refused as replayed). */
async function credit(sim: ChainSim, h: Holder, transactions: readonly `0x${string}`[]): Promise<void> {
  const el = h.el;
  for (const transaction of transactions) {
    const answer = await sim.node.request(h.user, 'GET', `/v1/chain/deposits/${transaction}`);
    if (answer.status !== 200) sim.world.violated('node', `GET /v1/chain/deposits answered ${answer.status} ${errorCode(answer.body)}`);
    for (const d of (answer.body as { deposits: Array<{ receipt: string }> }).deposits) {
      const receipt = depositReceiptCodec.decode(decodeCbor(fromBase64url(d.receipt)), 'receipt');
      try {
        await committed(sim, el, (requestId) => el.se.call('deposit', { receipt }, { requestId }));
        sim.world.recorder.count('deposits.credited');
      } catch (e) {
        if (seRefusal(e) !== 'CHAIN_REPLAYED') throw e;
      }
    }
  }
}

/** onchainDeposit: tokens of the wallet's on-chain account into its offline account, then the TEE credits them. */
export async function deposit(sim: ChainSim, h: Holder, amount: bigint): Promise<void> {
  const { world } = sim;
  sim.actions++;
  await sim.chain.follow();
  let transaction: `0x${string}`;
  try {
    transaction = await depositOnChain(h.clients, sim.contracts, h.address, amount);
  } catch (e) {
    if (!isTallyError(e, 'CHAIN_REVERTED')) throw e;
    world.recorder.count('deposits.refused');
    return;
  }
  world.recorder.count('deposits');
  h.uncredited.transactions.push(transaction);
  h.uncredited.amount += amount;
  if (world.random.chance(world.params.faults)) {
    // The receipt never reached the TEE (the wallet was cut off): the next sync credits it.
    world.recorder.count('faults.deposit-interrupted');
    return;
  }
  await creditPending(sim, h);
}

/** Credits what the chain took and the TEE has not credited yet. */
async function creditPending(sim: ChainSim, h: Holder): Promise<void> {
  if (h.uncredited.transactions.length === 0) return;
  await credit(sim, h, h.uncredited.transactions);
  h.uncredited = { transactions: [], amount: 0n };
}

/**
 * Reconciliation of one party (a holder's TA or an attacker's copy): fresh parameters, then rounds
 * of upload and statement until nothing is left or nothing more settles. `interrupt`: the fault of
 * an upload the chain took whose statement never reached the TEE.
 */
export async function sync(sim: ChainSim, party: Party, interrupt = true): Promise<void> {
  const { world, node } = sim;
  const h = party.holder;
  sim.actions++;
  world.recorder.count('syncs');
  await sim.chain.follow();
  await giveParams(sim, party);
  if (party.attack === null) await creditPending(sim, h);
  for (let round = 0; round < SYNC_ROUNDS_MAX; round++) {
    const upload = await party.el.se.call('onchainUpdate', {}).catch((e: unknown) => {
      if (seRefusal(e) === 'CHAIN_NO_ACCOUNT') return null;
      throw e;
    });
    if (upload === null || upload.items.length === 0) break;
    let done;
    try {
      done = await reconcileOnChain(h.clients, sim.contracts, { account: hex(upload.account), items: upload.items.map((i) => uploadItem(i.txOff, i.ack)), signature: hex(upload.signature) });
    } catch (e) {
      if (!isTallyError(e, 'CHAIN_REVERTED')) throw e;
      world.recorder.count(`uploads.reverted`);
      break;
    }
    world.recorder.count('uploads');
    world.recorder.count('uploads.items', upload.items.length);
    if (!done.accepted) world.recorder.count('uploads.uploader-frozen');
    await readChain(sim);
    if (interrupt && world.random.chance(world.params.faults)) {
      world.recorder.count('faults.upload-interrupted');
      return;
    }
    const answer = await node.request(h.user, 'POST', '/v1/chain/statements', { account: h.address, payments: upload.items.map((i) => statementQuery(i.txOff)) });
    if (answer.status !== 200) world.violated('node', `POST /v1/chain/statements answered ${answer.status} ${errorCode(answer.body)}`);
    const statement = statementCodec.decode(decodeCbor(fromBase64url((answer.body as { statement: string }).statement)), 'statement');
    const finalized = await committed(sim, party.el, (requestId) => party.el.se.call('finalize', { statement }, { requestId }));
    if (finalized.charged > 0n) {
      world.recorder.count('charged-back');
      // Taken back from an honest payee: what a forked (or forged) payer could not pay.
      if (!h.attacker) {
        sim.lost += finalized.charged;
        world.recorder.loss(sim.lost);
      }
    }
    if (finalized.status === 'frozen' && party.attack === null) h.frozen = true;
    if (finalized.freed === 0) break;
  }
}

/** The dynamic balance exchange's withdrawal: the TEE signs a pay-out to the wallet's on-chain account; the next upload pays it. */
export async function withdraw(sim: ChainSim, h: Holder, amount: bigint): Promise<void> {
  const el = h.el;
  sim.actions++;
  try {
    await committed(sim, el, (requestId) => el.se.call('withdraw', { to: fromHex(h.eoa.slice(2)), amount, now: sim.world.clock.now() }, { requestId }));
  } catch (e) {
    const code = seRefusal(e);
    if (code === null) throw e;
    sim.world.recorder.count(`refused.withdraw.${code}`);
    return;
  }
  sim.world.recorder.count('withdrawals');
  await sync(sim, { holder: h, el, attack: null });
}

/** Algorithm 3 `logout` then `clean`: the whole balance to the wallet's on-chain account, the account closed on chain. Answers whether it closed. */
export async function close(sim: ChainSim, h: Holder): Promise<boolean> {
  const el = h.el;
  const party: Party = { holder: h, el, attack: null };
  await sync(sim, party, false);
  try {
    await committed(sim, el, (requestId) => el.se.call('logout', { to: fromHex(h.eoa.slice(2)), now: sim.world.clock.now() }, { requestId }));
  } catch (e) {
    const code = seRefusal(e);
    if (code === null) throw e;
    sim.world.recorder.count(`refused.close.${code}`);
    return false;
  }
  await sync(sim, party, false);
  if ((await status(el)).status !== 'closed') return false;
  await committed(sim, el, (requestId) => el.se.call('clean', {}, { requestId }));
  h.closed = true;
  sim.world.recorder.count('accounts.closed');
  return true;
}


