/**
 * The ODW and other banks (docs/opera.md, "Several banks"): `setPeers` takes another bank's issuer
 * node certificate and signed parameters only when they check to the pinned root through that
 * bank's intermediary certificate; a payee takes that bank's tokens, and mounts with an ODW of a
 * maker only that bank lists, only once it holds them. Refusals leave the ODW's state as it was.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { randomBytes } from '../../core/crypto/hash.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { certify, hierarchy, signer } from '../../pki/test-fixtures.ts';
import { PARAMS_TAG, paramsBodyCodec, signed, type Maker } from './messages.ts';
import { assertPaid, balance, escrowKeys, issuerNodeCert, NOW, paramsFor, pay, pki, PureOdw, REFERENCE, rogueMaker } from './ta-fixtures.ts';
import { signToken } from './token.ts';

const peerIntermediary = signer('opera-ta/peer-intermediary');
const peerBank = signer('opera-ta/peer-issuer-node');
const peerIntermediaryCert = encodeCertificate(certify({ issuer: pki.root, issuerRole: 'root', role: 'intermediary', subject: peerIntermediary, extensions: { name: 'Bank P' } }));
const peerIssuerNodeCert = encodeCertificate(certify({ issuer: peerIntermediary, issuerRole: 'intermediary', role: 'issuer-node', subject: peerBank }));
/** The peer bank lists a maker the ODWs' own bank does not. */
const peerMakers: Maker[] = [{ publicKey: rogueMaker.publicKey, reference: REFERENCE }];

function peerParams(options: { by?: typeof peerBank; currency?: string } = {}) {
  return signed(paramsBodyCodec, options.by ?? peerBank, PARAMS_TAG, {
    currency: options.currency ?? 'EUR',
    denominations: [100n, 200n, 500n],
    hash: 'sha256',
    makers: peerMakers,
    escrowKey: escrowKeys.publicKey,
    at: NOW,
  });
}

const peer = (changed: Partial<{ intermediary: Uint8Array; issuerNode: Uint8Array; params: ReturnType<typeof peerParams> }> = {}) => ({ intermediary: peerIntermediaryCert, issuerNode: peerIssuerNodeCert, params: peerParams(), ...changed });

/** The rejection code of a call that must be refused, with the ODW's state unchanged. */
async function refusedWith(odw: PureOdw, name: string, input: unknown): Promise<string> {
  const before = JSON.stringify(odw.state, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  const e = await odw.call(name, input).then(
    () => assert.fail(`${name} was taken`),
    (err: unknown) => err as { details?: { reason?: string } },
  );
  assert.equal(JSON.stringify(odw.state, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)), before, 'a refusal changes nothing');
  return e.details?.reason ?? 'none';
}

describe("the ODW takes other banks' tokens and makers only under its root", () => {
  test('a peer whose issuer node chains to the root through its intermediary is taken; forged, foreign, mismatched, own or repeated ones are refused', async () => {
    const odw = await PureOdw.make('peers-a');
    const other = hierarchy('ed25519', 'opera-ta-other-root');
    const strangerNode = signer('opera-ta/stranger-node');
    const strangerNodeCert = encodeCertificate(certify({ issuer: other.intermediary, issuerRole: 'intermediary', role: 'issuer-node', subject: strangerNode }));
    // Under another root.
    assert.equal(await refusedWith(odw, 'setPeers', { peers: [peer({ intermediary: encodeCertificate(other.intermediaryCert), issuerNode: strangerNodeCert, params: peerParams({ by: strangerNode }) })], now: NOW }), 'CERT_UNKNOWN_ISSUER');
    // An issuer node certified by another intermediary than the one given.
    assert.equal(await refusedWith(odw, 'setPeers', { peers: [peer({ intermediary: encodeCertificate(pki.intermediaryCert) })], now: NOW }), 'CERT_CHAIN_INVALID');
    // Parameters not signed by the issuer node.
    assert.equal(await refusedWith(odw, 'setPeers', { peers: [peer({ params: peerParams({ by: signer('opera-ta/forger') }) })], now: NOW }), 'SIGNATURE_INVALID');
    // Another currency.
    assert.equal(await refusedWith(odw, 'setPeers', { peers: [peer({ params: peerParams({ currency: 'USD' }) })], now: NOW }), 'CURRENCY_MISMATCH');
    // The ODW's own bank, or one bank twice.
    assert.equal(await refusedWith(odw, 'setPeers', { peers: [{ intermediary: encodeCertificate(pki.intermediaryCert), issuerNode: issuerNodeCert, params: paramsFor() }], now: NOW }), 'OPERA_PEER_INVALID');
    assert.equal(await refusedWith(odw, 'setPeers', { peers: [peer(), peer()], now: NOW }), 'OPERA_PEER_INVALID');
    // The genuine peer, then none: the list is replaced each time.
    assert.deepEqual(await odw.call('setPeers', { peers: [peer()], now: NOW }), { peers: 1 });
    assert.equal(odw.state.peers?.length, 1);
    assert.deepEqual(await odw.call('setPeers', { peers: [], now: NOW }), { peers: 0 });
    assert.equal(odw.state.peers?.length, 0);
  });

  test("a payee takes another bank's token only while it holds that bank; an ODW of a maker only that bank lists mounts only then", async () => {
    // The payer: an ODW of the peer bank's maker, holding one token the peer bank signed.
    const payer = await PureOdw.make('peers-payer', { credential: 'rogue-maker' });
    assert.ok(payer.state.params !== undefined);
    payer.state = { ...payer.state, params: { ...payer.state.params, makers: [...payer.state.params.makers, ...peerMakers] }, repository: [signToken(peerBank, { serial: randomBytes(16), value: 500n, currency: 'EUR', issued: NOW })] };
    const payee = await PureOdw.make('peers-payee');
    // Without the peer bank, the payee does not mount with the payer's maker.
    const [, refused] = await pay(payer, payee, 500n);
    assert.ok(refused instanceof Error && /OPERA_MOUNT_REFUSED/.test(refused.message), String(refused));
    // With it, the payment goes through and the payee holds the peer bank's token.
    await payee.call('setPeers', { peers: [peer()], now: NOW });
    await payer.call('setPeers', { peers: [peer()], now: NOW });
    assertPaid(await pay(payer, payee, 500n));
    assert.equal(await balance(payee), 500n);
    assert.equal(await balance(payer), 0n);
    // A third ODW that holds the maker but not the bank's key refuses the token at Msg 3-1.
    const third = await PureOdw.make('peers-third');
    third.state = { ...third.state, peers: [{ bank: signer('opera-ta/not-the-peer').publicKey, makers: peerMakers }] };
    const [payerSide, payeeSide] = await pay(payee, third, 500n);
    assert.ok(payeeSide instanceof Error && /OPERA_TOKEN_INVALID/.test(payeeSide.message), String(payeeSide));
    assert.ok(payerSide instanceof Error, 'the payer does not end the payment either');
    assert.equal(await balance(third), 0n);
  });
});
