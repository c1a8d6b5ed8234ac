/**
 * A broken ODW lying to a genuine one inside the secure mount (its TA's state altered between
 * commands, or its messages of its own making sealed in the chain): a payer whose Msg 3-1 or tokens
 * are false, a payee whose acknowledgements or acceptance are, an amount the payee did not expect,
 * and the rules of the log (one transaction at a time, none finished offline once reported online,
 * none continued on an old mount). The genuine side refuses with a code, changes nothing, and keeps
 * what it needs to finish the transaction or settle it online (§4.1).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomBytes } from '../../core/crypto/hash.ts';
import { signRecord } from '../../core/crypto/record.ts';
import type { SealedTag } from '../../pki/escrow-tags.ts';
import { signer } from '../../pki/test-fixtures.ts';
import { flipNonce, type ChainMessage } from './exchange.ts';
import { ACCEPT_TAG, RELEASE_TAG } from './messages.ts';
import { finishes, Flight, logOf, meetPair, mountPair, nonceOf, payment, refusedUnchanged, snOf } from './ta-attack-fixtures.ts';
import { balance, bankSigner, charge, PureOdw, type Caller } from './ta-fixtures.ts';
import { PAYABLE_TAGS_MAX } from './escrow.ts';
import { bare, signToken, tagsOf, TOKEN_TAGS_MAX, type Token } from './token.ts';
import { claimOf, ended, TA_KEY_LABEL } from './trusted-app-common.ts';

const se = (odw: PureOdw): Caller => odw;

/** The payer's output, one token replaced (the payer's TA is broken). */
function replaceOutgoing(payer: PureOdw, at: number, token: (old: Token) => Token): void {
  const old = payer.state.outgoing[at];
  assert(old !== undefined);
  payer.state = { ...payer.state, outgoing: payer.state.outgoing.map((t, i) => (i === at ? token(old) : t)) };
}

/** The payee refuses the Msg 3-1 in flight, takes no token, and its log still holds the transaction to settle online. */
async function payeeRefuses(f: Flight, code: string): Promise<void> {
  await f.until('3-1');
  await refusedUnchanged(f.payee, () => f.deliver(), code);
  assert.equal(logOf(f.payee.state).accepted, 0, 'no token was taken');
  const { report } = await se(f.payee).call('settleReport', {});
  assert.deepEqual([report.body.mode, report.body.accepted], ['receive', 0]);
}

/** The payer refuses `box` from the payee and keeps its log and its tokens. */
async function payerRefuses(f: Flight, code: string, box: Uint8Array): Promise<void> {
  assert(f.payer.state.outgoing.length > 0);
  await refusedUnchanged(f.payer, () => f.payer.call('step', { box }), code);
  assert.notEqual(f.payer.state.log, undefined, 'its log is kept');
  assert.equal(f.payer.state.outgoing.length, logOf(f.payer.state).count, 'its tokens are kept');
}

describe('OPERA: a lying payer; the payee refuses Msg 3-1 and takes nothing (§3.3.3)', () => {
  const last = (f: Flight) => f.until('2-4', logOf(f.payer.state).count);
  const lies: Array<{ name: string; values?: bigint[]; amount?: bigint; lie(f: Flight): Promise<void>; code: string }> = [
    {
      name: 'a wrong PTK',
      lie: async (f) => {
        await last(f);
        f.payer.state = { ...f.payer.state, log: { ...logOf(f.payer.state), ptk: randomBytes(32) } };
      },
      code: 'AEAD_FAILED',
    },
    {
      name: 'Msg 3-1 after one token of three (its log says one: C_A = 1, C_B = 1 of 3)',
      lie: async (f) => {
        await f.until('2-4', 1);
        f.payer.state = { ...f.payer.state, log: { ...logOf(f.payer.state), count: 1 } };
      },
      code: 'OPERA_MESSAGE_INVALID',
    },
    {
      name: 'Msg 3-1 after one token of three, claiming all three (C_A = 3, C_B = 1)',
      lie: async (f) => {
        await f.until('2-4', 1);
        f.forge((_, s) => {
          const log = logOf(s);
          const sn = snOf(f.payer);
          return { msg: '3-1', ptk: log.ptk as Uint8Array, counter: log.count, sn, signature: signRecord(f.payer.env.signer(TA_KEY_LABEL), RELEASE_TAG, claimOf(log, sn)) };
        });
      },
      code: 'OPERA_MESSAGE_INVALID',
    },
    { name: 'a token whose bank signature is altered', lie: async (f) => replaceOutgoing(f.payer, 1, (t) => ({ ...t, signature: t.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) })), code: 'OPERA_TOKEN_INVALID' },
    { name: 'a token signed by another key', lie: async (f) => replaceOutgoing(f.payer, 1, (t) => signToken(signer('counterfeiter'), t.body)), code: 'OPERA_TOKEN_INVALID' },
    { name: 'a token of another currency', lie: async (f) => replaceOutgoing(f.payer, 1, (t) => signToken(bankSigner, { ...t.body, currency: 'USD' })), code: 'OPERA_TOKEN_INVALID' },
    { name: 'the same token twice (a token read twice)', values: [5n, 5n], amount: 10n, lie: async (f) => replaceOutgoing(f.payer, 1, () => f.payer.state.outgoing[0] as Token), code: 'OPERA_TOKEN_REPEATED' },
    {
      name: 'a token the payee already holds',
      values: [5n, 5n],
      amount: 10n,
      lie: async (f) => {
        await charge(f.payee, [5n]);
        // With the escrow tags of the token it replaces: only the repetition is the lie.
        replaceOutgoing(f.payer, 0, (t) => ({ ...(f.payee.state.repository[0] as Token), tags: t.tags }));
      },
      code: 'OPERA_TOKEN_REPEATED',
    },
    { name: 'a token without the escrow tag of this payment', lie: async (f) => replaceOutgoing(f.payer, 1, bare), code: 'OPERA_TOKEN_INVALID' },
    { name: 'a token whose escrow chain leaves no room for its deposit', lie: async (f) => replaceOutgoing(f.payer, 1, (t) => ({ ...t, tags: Array.from({ length: PAYABLE_TAGS_MAX + 1 }, () => tagsOf(t)[0] as SealedTag) })), code: 'OPERA_TOKEN_INVALID' },
    { name: 'a token whose escrow chain is over its limit', lie: async (f) => replaceOutgoing(f.payer, 1, (t) => ({ ...t, tags: Array.from({ length: TOKEN_TAGS_MAX + 1 }, () => tagsOf(t)[0] as SealedTag) })), code: 'DECODE_FAILED' },
    { name: 'tokens worth less than the AMT of Msg 2-1', values: [5n, 5n], amount: 10n, lie: async (f) => replaceOutgoing(f.payer, 1, (t) => ({ ...signToken(bankSigner, { ...t.body, serial: randomBytes(16), value: 1n }), tags: t.tags })), code: 'OPERA_MESSAGE_INVALID' },
    ...(['a signature by another key', 'another SN'] as const).map((what) => ({
      name: `Msg 3-1 with ${what}`,
      lie: async (f: Flight) => {
        await last(f);
        f.forge((_, s) => {
          const log = logOf(s);
          const sn = what === 'another SN' ? randomBytes(16) : snOf(f.payer);
          const key = what === 'another SN' ? f.payer.env.signer(TA_KEY_LABEL) : signer('not-the-payer');
          return { msg: '3-1' as const, ptk: log.ptk as Uint8Array, counter: log.count, sn, signature: signRecord(key, RELEASE_TAG, claimOf(log, snOf(f.payer))) };
        });
      },
      code: 'OPERA_MESSAGE_INVALID',
    })),
  ];
  for (const { name, values = [5n, 2n, 1n], amount = 8n, lie, code } of lies) {
    it(`${name}: ${code}`, async () => {
      const f = await payment('liar', values, amount);
      await lie(f);
      await payeeRefuses(f, code);
    });
  }
});

describe('OPERA: a lying payee; the payer refuses and keeps its log and tokens', () => {
  it('Msg 2-4 with a wrong C_B, or without N\'_A', async () => {
    const f = await payment('acks', [5n, 2n, 1n], 8n);
    await f.until('2-3', 1);
    await payerRefuses(f, 'OPERA_MESSAGE_INVALID', f.forged((m) => ({ msg: '2-4', counter: 2, nonce: flipNonce(nonceOf(m)) })));
    await payerRefuses(f, 'OPERA_MESSAGE_INVALID', f.forged((m) => ({ msg: '2-4', counter: 1, nonce: nonceOf(m) })));
  });

  it('Msg 2-2 claiming the tokens taken, without the acceptance signature or with another key\'s', async () => {
    const f = await payment('accepted', [5n, 2n, 1n], 8n);
    const accepted = (m: ChainMessage, accept?: Uint8Array): ChainMessage => ({ msg: '2-2', nonce: flipNonce(nonceOf(m)), received: 0, accepted: 1, ...(accept === undefined ? {} : { accept }) });
    await payerRefuses(f, 'OPERA_MESSAGE_INVALID', f.forged((m) => accepted(m)));
    const claim = claimOf(logOf(f.payer.state), snOf(f.payer));
    await payerRefuses(f, 'OPERA_MESSAGE_INVALID', f.forged((m) => accepted(m, signRecord(signer('not-the-payee'), ACCEPT_TAG, claim))));
    await payerRefuses(f, 'OPERA_MESSAGE_INVALID', f.forged((m) => accepted(m, randomBytes(64))));
  });

  it('Msg 3-2 with a bad signature: the payer keeps its released log to settle online', async () => {
    const f = await payment('accept', [5n, 2n, 1n], 8n);
    await f.until('3-1');
    const sn = snOf(f.payee);
    const claim = claimOf(logOf(f.payer.state), snOf(f.payer));
    await payerRefuses(f, 'OPERA_MESSAGE_INVALID', f.forged(() => ({ msg: '3-2', counter: 3, sn, signature: randomBytes(64) })));
    await payerRefuses(f, 'OPERA_MESSAGE_INVALID', f.forged(() => ({ msg: '3-2', counter: 3, sn, signature: signRecord(signer('not-the-payee'), ACCEPT_TAG, claim) })));
    await payerRefuses(f, 'OPERA_MESSAGE_INVALID', f.forged(() => ({ msg: '3-2', counter: 3, sn: randomBytes(16), signature: signRecord(f.payee.env.signer(TA_KEY_LABEL), ACCEPT_TAG, claim) })));
    await finishes(f, [0n, 8n]);
  });

  it('a resumed Msg 2-2 counting fewer tokens than the payer released its key for', async () => {
    const f = await payment('recount', [5n, 2n, 1n], 8n);
    await f.until('3-1');
    const again = await Flight.start(f.payer, f.payee, undefined);
    assert.equal(logOf(f.payer.state).released, 1);
    await payerRefuses(again, 'OPERA_MESSAGE_INVALID', again.forged((m) => ({ msg: '2-2', nonce: flipNonce(nonceOf(m)), received: 1, accepted: 0 })));
    await finishes(again, [0n, 8n]);
  });

  it('a hello saying the payee was paid before the payer released its key: the payer keeps its tokens (OPERA_PENDING)', async () => {
    const f = await payment('hello-paid', [5n, 2n, 1n], 8n);
    await f.until('2-3', 2);
    const { payer, payee } = f;
    payee.state = ended(payee.state, logOf(payee.state).txid, 'paid');
    const { hellos } = await meetPair(payer, payee);
    await refusedUnchanged(payer, () => payer.call('greet', { hello: hellos.payee }), 'OPERA_PENDING');
    const { report } = await se(payer).call('settleReport', {});
    assert.deepEqual([report.body.released, report.body.tokens.length], [0, 3]);
  });
});

describe('OPERA: the amount the payee expects', () => {
  it('another AMT at Msg 2-1 is refused before any token moves; the payer gets its tokens back at the next mount', async () => {
    const f = await payment('expect', [5n, 2n, 1n], 8n, { expect: 7n });
    await refusedUnchanged(f.payee, () => f.deliver(), 'OPERA_AMOUNT_MISMATCH');
    assert.equal(f.payee.state.log, undefined);
    const again = await mountPair(f.payer, f.payee);
    assert.deepEqual(again.plans, { payer: 'new', payee: 'new' });
    assert.deepEqual([await balance(f.payer), await balance(f.payee)], [8n, 0n]);
  });
});

describe('OPERA: the rules of the log', () => {
  it('an ODW with a payment pending with one partner refuses to pay or be paid by another (OPERA_PENDING); its tokens stay', async () => {
    const f = await payment('busy', [5n, 2n, 1n], 8n);
    await f.until('2-3', 2);
    const { payer, payee } = f;
    const other = await PureOdw.make('busy-other');
    await charge(other, [2n]);
    await charge(payee, [2n]);
    for (const [busy, role] of [[payer, 'payer'], [payee, 'payer'], [payer, 'payee']] as const) {
      const { hellos } = role === 'payer' ? await meetPair(busy, other) : await meetPair(other, busy);
      await refusedUnchanged(busy, () => busy.call('greet', { hello: role === 'payer' ? hellos.payee : hellos.payer }), 'OPERA_PENDING');
    }
    // With each other, but the other way round: the interrupted payment keeps its direction.
    const swapped = await meetPair(payee, payer);
    await refusedUnchanged(payee, () => payee.call('greet', { hello: swapped.hellos.payee }), 'OPERA_PENDING');
    await refusedUnchanged(payer, () => payer.call('greet', { hello: swapped.hellos.payer }), 'OPERA_PENDING');
    assert.equal(payer.state.outgoing.length, 3);
    const resumed = await Flight.start(payer, payee, undefined);
    await resumed.finish();
    assert.deepEqual([await balance(payer), await balance(payee), await balance(other)], [0n, 10n, 2n]);
  });

  it('once reported for settlement, the payer never sends Msg 3-1 and the payee never takes the tokens, on this mount or the next', async () => {
    const f = await payment('settling', [5n, 2n, 1n], 8n);
    await f.until('2-4', 3);
    await se(f.payer).call('settleReport', {});
    await refusedUnchanged(f.payer, () => f.deliver(), 'OPERA_PENDING');

    const g = await payment('settling-payee', [5n, 2n, 1n], 8n);
    await g.until('3-1');
    await se(g.payee).call('settleReport', {});
    await refusedUnchanged(g.payee, () => g.deliver(), 'OPERA_PENDING');
    assert.equal(await balance(g.payee), 0n);
    for (const { payer, payee } of [f, g]) {
      const { hellos } = await meetPair(payer, payee);
      await refusedUnchanged(payer, () => payer.call('greet', { hello: hellos.payee }), 'OPERA_PENDING');
      await refusedUnchanged(payee, () => payee.call('greet', { hello: hellos.payer }), 'OPERA_PENDING');
    }
  });

  it('a mount replaced by a new one cannot be continued: its next box is refused, on the new mount too', async () => {
    const f = await payment('remount', [5n, 2n, 1n], 8n);
    await f.deliver();
    const old = f.box as Uint8Array;
    await f.payer.call('mount', { handshakeHash: randomBytes(32), role: 'payer' });
    await refusedUnchanged(f.payer, () => f.payer.call('step', { box: old }), 'OPERA_MOUNT_STATE');
    const again = await Flight.start(f.payer, f.payee, undefined);
    assert.deepEqual(again.mounted.plans, { payer: 'resume', payee: 'resume' });
    await again.deliver();
    await refusedUnchanged(f.payer, () => f.payer.call('step', { box: old }), 'AEAD_FAILED');
    await finishes(again, [0n, 8n]);
  });
});
