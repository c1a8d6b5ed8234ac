/**
 * OPERA's escrow tags between real ODWs (in-process secure elements): a token carries one tag per
 * payment and one for its deposit, sealed so that neither ODW can read them; a cloned ODW (its
 * sealed state and counter copied) that pays the same token to two payees leaves two chains that
 * part at its hop, and only the bank's escrow key names it; a token whose chain is full waits for
 * its deposit. Change tokens carry the payee's tag the same way. The node's side is node-escrow.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { equalBytes } from '../../core/bytes.ts';
import { generateKeyPair } from '../../core/crypto/hpke.ts';
import { isTallyError } from '../../core/errors.ts';
import { escrowTags, type SealedTag } from '../../pki/escrow-tags.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { operaEscrow, PAYABLE_TAGS_MAX } from './escrow.ts';
import { assertPaid, balance, charge, escrowKeys, makeOdw, pay, PureOdw, type Caller } from './ta-fixtures.ts';
import { tagsOf, type Token } from './token.ts';

async function deposited(odw: { se: Caller }): Promise<Token[]> {
  return (await odw.se.call('depositRequest', {})).request.body.tokens;
}

describe('OPERA escrow tags', () => {
  it('a cloned ODW pays one token to two payees: the deposited chains part at its hop, and the escrow key names it', async () => {
    const [a, b, c, d] = await Promise.all([makeOdw('escrow-a'), makeOdw('escrow-b'), makeOdw('escrow-c'), makeOdw('escrow-d')]);
    await charge(a, [10n]);
    const clone = await a.clone('escrow-a-clone');
    assertPaid(await pay(a, b, 10n));
    assertPaid(await pay(clone, c, 10n));
    assertPaid(await pay(b, d, 10n)); // b pays on honestly
    const [viaD] = (await deposited(d)) as [Token];
    const [viaC] = (await deposited(c)) as [Token];
    assert.ok(equalBytes(viaD.body.serial, viaC.body.serial), 'one token, two copies');
    assert.deepEqual([tagsOf(viaD).length, tagsOf(viaC).length], [3, 2], 'a tag per payment and the deposit');
    const aKey = (await a.se.call('status', {})).device;
    const bKey = (await b.se.call('status', {})).device;
    const named = operaEscrow.attribute(nodeProvider, escrowKeys.privateKey, viaD.body.serial, tagsOf(viaD), tagsOf(viaC));
    assert.deepEqual(named, { hop: 1, device: aKey });
    // Each tag of the honest chain names the ODW that paid at its hop.
    const signers = [1, 2, 3].map((hop) => operaEscrow.openTag(nodeProvider, escrowKeys.privateKey, viaD.body.serial, tagsOf(viaD), hop).device.key);
    assert.deepEqual(signers, [aKey.key, bKey.key, (await d.se.call('status', {})).device.key]);
    // Nobody else opens them: another key, or another scheme's domain (OTP's labels) with the bank's own key.
    assert.throws(() => operaEscrow.openTag(nodeProvider, generateKeyPair().privateKey, viaD.body.serial, tagsOf(viaD), 1), (e: unknown) => isTallyError(e, 'AEAD_FAILED'));
    const otpLabels = escrowTags({ signTag: 'tally/otp/escrow-tag/v1', infoLabel: 'tally/otp/escrow/v1', serialBytes: 16, tagsMax: 64 });
    assert.throws(() => otpLabels.openTag(nodeProvider, escrowKeys.privateKey, viaD.body.serial, tagsOf(viaD), 1), (e: unknown) => isTallyError(e, 'AEAD_FAILED'));
    assert.throws(() => otpLabels.attribute(nodeProvider, escrowKeys.privateKey, viaD.body.serial, tagsOf(viaD), tagsOf(viaC)), (e: unknown) => isTallyError(e, 'AEAD_FAILED'));
  });

  it("change carries the payee's tag: a cloned payee that gives one change token to two payers is named by it", async () => {
    const [a1, a2, b] = await Promise.all([makeOdw('escrow-ch-a1'), makeOdw('escrow-ch-a2'), makeOdw('escrow-ch-b')]);
    await Promise.all([charge(a1, [10n]), charge(a2, [10n]), charge(b, [5n])]);
    const clone = await b.clone('escrow-ch-b-clone');
    // Each payer's 10.00 cannot make 5.00: the payee (and then its clone) gives its one 5.00 token back as change.
    assertPaid(await pay(a1, b, 5n));
    assertPaid(await pay(a2, clone, 5n));
    const [viaA1] = (await deposited(a1)) as [Token];
    const [viaA2] = (await deposited(a2)) as [Token];
    assert.ok(equalBytes(viaA1.body.serial, viaA2.body.serial), 'one change token, two copies');
    assert.deepEqual([tagsOf(viaA1).length, tagsOf(viaA2).length], [2, 2], "the payee's tag for the change and the payer's deposit");
    const [bStatus, a1Status] = [await b.se.call('status', {}), await a1.se.call('status', {})];
    const first = operaEscrow.openTag(nodeProvider, escrowKeys.privateKey, viaA1.body.serial, tagsOf(viaA1), 1);
    assert.deepEqual([first.device, first.content.payee], [bStatus.device, a1Status.sn], "the change's tag: signed by the payee, naming the payer");
    const named = operaEscrow.attribute(nodeProvider, escrowKeys.privateKey, viaA1.body.serial, tagsOf(viaA1), tagsOf(viaA2));
    assert.deepEqual(named, { hop: 1, device: bStatus.device });
  });

  it('a domain differing only in its signature label does not check the tags of another', async () => {
    const [a, b] = await Promise.all([makeOdw('escrow-dom-a'), makeOdw('escrow-dom-b')]);
    await charge(a, [5n]);
    assertPaid(await pay(a, b, 5n));
    const [token] = (await deposited(b)) as [Token];
    const lookalike = escrowTags({ ...operaEscrow.domain, signTag: 'tally/otp/escrow-tag/v1' });
    assert.throws(() => lookalike.openTag(nodeProvider, escrowKeys.privateKey, token.body.serial, tagsOf(token), 1), (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID'));
  });

  it('a token whose chain is full is not paid again: it waits in the repository for its deposit, which still fits its last tag', async () => {
    const payer = await PureOdw.make('escrow-full');
    const payee = await makeOdw('escrow-full-payee');
    await charge(payer, [5n]);
    const [held] = payer.state.repository as [Token];
    let tags: SealedTag[] = [...tagsOf(held)];
    for (let i = 0; i < PAYABLE_TAGS_MAX; i++) tags = operaEscrow.appendTag({ serial: held.body.serial, tags, payee: new Uint8Array(16), device: payer.env.signer('opera/ta'), escrowPublicKey: escrowKeys.publicKey });
    payer.state = { ...payer.state, repository: [{ ...held, tags }] };
    const [paid] = await pay(payer, payee, 5n);
    assert.ok(paid instanceof Error && /INSUFFICIENT_FUNDS/.test(paid.message), String(paid));
    assert.equal(await balance(payer), 5n);
    const [token] = (await deposited({ se: payer })) as [Token];
    assert.equal(tagsOf(token).length, PAYABLE_TAGS_MAX + 1);
  });
});
