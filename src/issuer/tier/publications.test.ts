/**
 * Publications between banks: each intermediary publishes a scheme's public parameters signed with
 * its key; the central bank keeps the newest and carries it in its directory; each other bank keeps
 * it only when it verifies, and serves it to its wallets at `GET /v1/interbank/peers`. A scheme
 * made for the test publishes a body its test can change.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fromBase64url, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { signPublication, verifyPublication } from '../../pki/publication.ts';
import { PUBLICATIONS_PER_BANK_MAX } from './publications.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import type { Scheme } from '../../schemes/scheme.ts';
import { send, signed, Tiers, type Json, type TierBank } from './test-tiers.ts';

/** What each bank's test scheme publishes now, by the bank's key id. */
const published = new Map<string, Uint8Array | undefined>();

const board: Scheme = {
  name: 'board',
  title: 'a notice board (test only): publishes what its test sets',
  paper: { title: 'none', authors: 'Tally', institution: 'Tally' },
  capabilities: [],
  node: async () => ({ name: 'board', register: () => undefined, publication: async (services) => published.get(toHex(keyId(services.identity.intermediary.certificate.body.subject))) }),
  wallet: { trustedApps: [] },
  cli: { handlers: {} },
};

let tiers: Tiers;
let bankA: TierBank;
let bankB: TierBank;

before(async () => {
  tiers = await Tiers.start({ schemes: [board], tag: 'publications' });
  bankA = await tiers.bank('bank-a');
  bankB = await tiers.bank('bank-b');
});

after(async () => {
  await tiers?.stop();
});

async function peersAt(bank: TierBank): Promise<Json[]> {
  const a = await send(bank.url, 'GET', '/v1/interbank/peers');
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return a.body['peers'] as Json[];
}

/** What a wallet of `reader` learns of `peer`'s publication, checked as a wallet checks it: the certificate under its root, the record under the certificate. */
async function readAsWallet(reader: TierBank, peer: TierBank): Promise<{ body: string; version: number } | undefined> {
  const entry = (await peersAt(reader)).find((p) => p['keyId'] === peer.keyId);
  assert.ok(entry !== undefined, `${reader.name} knows ${peer.name}`);
  const certificate = decodeCertificate(fromBase64url(entry['certificate'] as string));
  verifyChain({ provider: nodeProvider, chain: [certificate], trustAnchors: [decodeCertificate(reader.certificates.root)], now: Date.now(), leafRoles: ['intermediary'] });
  const record = (entry['publications'] as Record<string, string>)['board'];
  if (record === undefined) return undefined;
  const body = verifyPublication(nodeProvider, fromBase64url(record), certificate);
  return { body: new TextDecoder().decode(body.body), version: body.version };
}

test("a bank's publication reaches the other bank's wallets, verified; a new one replaces it; nothing published is nothing served", { timeout: 60_000 }, async () => {
  await tiers.syncAll();
  assert.equal(await readAsWallet(bankB, bankA), undefined, 'nothing published yet');
  published.set(bankA.keyId, utf8('keys of A, first'));
  await tiers.syncAll();
  const first = await readAsWallet(bankB, bankA);
  assert.equal(first?.body, 'keys of A, first');
  // Unchanged: not published again (the version stays).
  await tiers.syncAll();
  assert.equal((await readAsWallet(bankB, bankA))?.version, first?.version);
  published.set(bankA.keyId, utf8('keys of A, second'));
  await tiers.syncAll();
  const second = await readAsWallet(bankB, bankA);
  assert.equal(second?.body, 'keys of A, second');
  assert.ok((second?.version ?? 0) > (first?.version ?? 0));
  // The directory at the central bank carries it too, and a bank does not list itself.
  const directory = (await send(tiers.cb.url, 'GET', '/v1/cb/directory')).body['intermediaries'] as Json[];
  assert.equal((directory.find((i) => i['keyId'] === bankA.keyId)?.['publications'] as string[]).length, 1);
  assert.ok(!(await peersAt(bankA)).some((p) => p['keyId'] === bankA.keyId));
  await tiers.settleAndAudit();
});

test('the central bank takes a publication only from the intermediary that signed it, the newest only, and nothing malformed or oversized', { timeout: 60_000 }, async () => {
  const post = (signer: typeof bankA.signer, record: Uint8Array | string) => signed(tiers.cb.url, signer, 'POST', '/v1/cb/publications', { record: typeof record === 'string' ? record : toBase64url(record) });
  const newest = Date.now() + 60_000;
  const own = await post(bankB.signer, signPublication(bankB.signer, { scheme: 'board', version: newest, body: utf8('keys of B') }));
  assert.equal(own.status, 200, JSON.stringify(own.body));
  assert.equal(own.body['version'], newest);
  // An older version changes nothing.
  const older = await post(bankB.signer, signPublication(bankB.signer, { scheme: 'board', version: newest - 1, body: utf8('old keys of B') }));
  assert.equal(older.body['version'], newest);
  // B posts a record A signed, or A's name on its own: refused.
  const asA = await post(bankB.signer, signPublication(bankA.signer, { scheme: 'board', version: newest + 1, body: utf8('keys of A, from B') }));
  assert.equal(asA.status, 403, JSON.stringify(asA.body));
  assert.equal((asA.body['error'] as Json)['code'], 'FORBIDDEN');
  // A key no intermediary holds.
  const stranger = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(99));
  const strange = await post(stranger, signPublication(stranger, { scheme: 'board', version: newest + 2, body: utf8('keys of nobody') }));
  assert.equal(strange.status, 401);
  // Malformed and oversized.
  const malformed = await post(bankB.signer, toBase64url(utf8('not cbor')));
  assert.equal(malformed.status, 400, JSON.stringify(malformed.body));
  const oversized = await post(bankB.signer, 'A'.repeat(30_000));
  assert.equal(oversized.status, 400);
  // No more schemes than a bank may publish for.
  for (let i = 1; i < PUBLICATIONS_PER_BANK_MAX; i++) {
    const more = await post(bankB.signer, signPublication(bankB.signer, { scheme: `scheme-${i}`, version: 1, body: utf8(`scheme ${i}`) }));
    assert.equal(more.status, 200, JSON.stringify(more.body));
  }
  const one = await post(bankB.signer, signPublication(bankB.signer, { scheme: 'one-too-many', version: 1, body: utf8('one too many') }));
  assert.equal(one.status, 400, JSON.stringify(one.body));
  assert.equal((await post(bankB.signer, signPublication(bankB.signer, { scheme: 'scheme-1', version: 2, body: utf8('scheme 1, again') }))).status, 200, 'a scheme it publishes for already is updated');
  await tiers.syncAll();
  await tiers.syncAll();
  assert.equal((await readAsWallet(bankA, bankB))?.body, 'keys of B');
  await tiers.settleAndAudit();
});

test('a revoked bank publishes nothing more, and the other banks list it as revoked with what it published before', { timeout: 60_000 }, async () => {
  published.set(bankA.keyId, utf8('keys of A, before revocation'));
  await tiers.syncAll();
  await tiers.cb.ok('POST', '/v1/cb/operator/revoke', { intermediary: bankA.keyId, reason: 'licence withdrawn' });
  published.set(bankA.keyId, utf8('keys of A, after revocation'));
  await tiers.syncAll();
  await tiers.syncAll();
  const entry = (await peersAt(bankB)).find((p) => p['keyId'] === bankA.keyId);
  assert.equal(entry?.['revoked'], true);
  assert.equal((await readAsWallet(bankB, bankA))?.body, 'keys of A, before revocation');
  const refused = await signed(tiers.cb.url, bankA.signer, 'POST', '/v1/cb/publications', { record: toBase64url(signPublication(bankA.signer, { scheme: 'board', version: Date.now() + 120_000, body: utf8('late') })) });
  assert.equal(refused.status, 403, JSON.stringify(refused.body));
  assert.equal((refused.body['error'] as Json)['code'], 'CERT_REVOKED');
  // The peers route is an intermediary's: the central bank refuses it.
  assert.equal(((await send(tiers.cb.url, 'GET', '/v1/interbank/peers')).body['error'] as Json)['code'], 'ROLE_MISMATCH');
  await tiers.settleAndAudit();
});
