/**
 * Escrow attribution on the OPERA node, PGlite and PostgreSQL: a token an ODW paid twice (a clone of
 * it paid the same token to a second payee) comes back twice; the second deposit is a double spend,
 * and the two copies' escrow tags, opened then, name the device that signed both branches: a
 * `paid-twice` finding, and its certificate revoked. A serial deposited once is credited with its
 * tags kept as they came, unopened. Tags that do not name one device (forged, sealed to another key,
 * reordered, truncated) name nobody and revoke nobody; an oversized chain is refused whole. The
 * tokens' tags are made as the ODWs make them (escrow.ts) with the fixture's device keys, sealed to
 * the escrow key the node's parameters carry. Every test ends with the audit.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { encodeCbor } from '../../core/cbor.ts';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { generateKeyPair } from '../../core/crypto/hpke.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import type { SealedTag } from '../../pki/escrow-tags.ts';
import { bankPayee, tagged } from './escrow.ts';
import { DEPOSIT_REQUEST_TAG, NONCE_BYTES } from './messages.ts';
import { operaNode, type OperaClient } from './node-fixtures.ts';
import { tagsOf, TOKEN_TAGS_MAX, type Token } from './token.ts';

after(() => closeTestTemplates());

for (const backend of testBackends()) {
  describe(`OPERA escrow attribution on ${backend.kind}`, { skip: backend.skip }, () => {
    async function setupNode() {
      const n = await operaNode(backend);
      const escrowKey = (await n.params()).escrowKey;
      const [alice, bob, carol] = [await n.client(), await n.client(), await n.client()];
      await n.mint(alice, '10.00');
      /** `from`'s ODW pays `tokens` to `to` (its tag appended). */
      const pay = (tokens: readonly Token[], from: OperaClient, to: OperaClient, key = escrowKey) => tagged(tokens, { payee: to.sn, device: from.device, escrowKey: key, random: randomBytes });
      /** `who`'s ODW deposits: the last tag names the bank. */
      const depositTagged = (tokens: readonly Token[], who: OperaClient) => tagged(tokens, { payee: bankPayee(n.bank), device: who.device, escrowKey, random: randomBytes });
      return { n, escrowKey, alice, bob, carol, pay, depositTagged };
    }

    test('a token paid twice by one ODW: the second deposit is a double spend, the tags name that ODW and it is revoked', async () => {
      const { n, alice, bob, carol, pay, depositTagged } = await setupNode();
      try {
        const [token] = (await n.charged(alice, [[500n, 1]])) as [Token];
        // Alice's ODW pays the token to Bob; her clone (the same state, the same device key) pays it to Carol.
        const toBob = depositTagged(pay([token], alice, bob), bob);
        const toCarol = depositTagged(pay([token], alice, carol), carol);
        const first = await n.deposit(bob, toBob);
        assert.deepEqual([first.credited, first.outcomes], ['5.00', ['credited']]);
        const stored = await n.rows<{ tags: Uint8Array }>('SELECT tags FROM opera_tokens WHERE serial = $1', [token.body.serial]);
        assert.deepEqual(new Uint8Array(stored[0]?.tags as Uint8Array), encodeCbor(tagsOf(toBob[0] as Token)), 'kept sealed, as it came');
        assert.equal((await n.findings()).length, 0, 'a serial deposited once opens nothing');

        const second = await n.deposit(carol, toCarol);
        assert.deepEqual([second.credited, second.outcomes], ['0.00', ['double-spend']]);
        const found = await n.findings();
        const serial = toHex(token.body.serial);
        assert.deepEqual(found.map((f) => [f.kind, f.serial, f.device, f.hop]), [
          ['paid-twice', serial, alice.deviceId, 1],
          ['double-spend', serial, carol.deviceId, null],
        ]);
        assert.equal(typeof found[0]?.revocationVersion, 'number');
        assert.equal((await n.rows('SELECT 1 FROM opera_double_spends')).length, 1, 'the second copy is kept as evidence');
        // The revoked ODW's next request is refused.
        const refusedDeposit = await n.deposit(alice, depositTagged([token], alice));
        await expectError(refusedDeposit.res, 403, 'CERT_REVOKED');
        await n.conservation();
      } finally {
        await n.h.close();
      }
    });

    test('a copy paid on by an honest holder: the chains part where the clone paid, not later', async () => {
      const { n, alice, bob, carol, pay, depositTagged } = await setupNode();
      try {
        const dave = await n.client();
        const [token] = (await n.charged(alice, [[200n, 1]])) as [Token];
        // Alice pays Bob, Bob pays Dave (honest), and Bob's clone pays Carol the same token.
        const atBob = pay([token], alice, bob);
        const viaDave = depositTagged(pay(atBob, bob, dave), dave);
        const viaCarol = depositTagged(pay(atBob, bob, carol), carol);
        assert.deepEqual((await n.deposit(dave, viaDave)).outcomes, ['credited']);
        assert.deepEqual((await n.deposit(carol, viaCarol)).outcomes, ['double-spend']);
        const named = (await n.findings()).filter((f) => f.kind === 'paid-twice');
        assert.deepEqual(named.map((f) => [f.device, f.hop]), [[bob.deviceId, 2]], 'Bob, at hop 2; Alice, whose hop both share, is not named');
        await n.conservation();
      } finally {
        await n.h.close();
      }
    });

    test('tags that do not name one device name nobody: forged, sealed to another key, reordered, truncated, two devices', async () => {
      const { n, alice, bob, carol, pay, depositTagged } = await setupNode();
      try {
        const tokens = await n.charged(alice, [[100n, 5]]);
        const other = generateKeyPair().publicKey;
        const t = (i: number) => tokens[i] as Token;
        const first = tokens.map((token) => depositTagged(pay([token], alice, bob), bob)[0] as Token);
        assert.deepEqual((await n.deposit(bob, first)).outcomes, first.map(() => 'credited'));
        const forgedTag = (token: Token): SealedTag[] => [{ enc: randomBytes(32), ciphertext: randomBytes(200) }, ...tagsOf(token).slice(1)];
        const chain = depositTagged(pay(pay([t(2)], alice, carol), carol, bob), bob)[0] as Token;
        const copies: Token[] = [
          // A forged first tag (bytes no escrow key opens).
          { ...t(0), tags: forgedTag(depositTagged(pay([t(0)], alice, carol), carol)[0] as Token) },
          // Alice's tag sealed to another key than the bank's.
          depositTagged(pay([t(1)], alice, carol, other), carol)[0] as Token,
          // A chain reordered: its two tags swapped.
          { ...chain, tags: [...tagsOf(chain)].reverse() },
          // A chain truncated to a prefix of the first copy's: the copies never part.
          { ...t(3), tags: tagsOf(first[3] as Token).slice(0, 1) },
          // A copy whose first tag was signed by another device than the first copy's (Carol, claiming Alice's hop).
          depositTagged(pay([t(4)], carol, carol), carol)[0] as Token,
        ];
        const revokedBefore = (await n.rows('SELECT 1 FROM revoked_certificates')).length;
        const answer = await n.deposit(carol, copies);
        assert.deepEqual([answer.credited, answer.outcomes], ['0.00', copies.map(() => 'double-spend')]);
        assert.deepEqual((await n.findings()).filter((f) => f.kind === 'paid-twice'), [], 'no device named');
        assert.equal((await n.rows('SELECT 1 FROM revoked_certificates')).length, revokedBefore, 'nobody revoked');
        assert.equal((await n.rows('SELECT 1 FROM opera_double_spends')).length, copies.length, 'each copy kept as evidence');
        await n.conservation();
      } finally {
        await n.h.close();
      }
    });

    test('an oversized chain is refused whole: nothing credited, nothing spent, nothing found', async () => {
      const { n, alice, bob, pay } = await setupNode();
      try {
        const [token, fine] = (await n.charged(alice, [[100n, 1], [50n, 1]])) as [Token, Token];
        let long = pay([token], alice, bob);
        for (let i = 0; i < TOKEN_TAGS_MAX; i++) long = [{ ...(long[0] as Token), tags: [...tagsOf(long[0] as Token), tagsOf(long[0] as Token)[0] as SealedTag] }];
        assert.ok(tagsOf(long[0] as Token).length > TOKEN_TAGS_MAX);
        // Signed by Bob's ODW as it stands (the codec would refuse to make it).
        const body = { nonce: randomBytes(NONCE_BYTES), tokens: [fine, long[0] as Token] };
        const request = { body, signature: signRecord(bob.device, DEPOSIT_REQUEST_TAG, body) };
        const refused = await n.send(bob, '/v1/opera/deposit', { device: bob.deviceId, request: toBase64url(encodeCbor(request)) });
        await expectError(refused, 400, 'BODY_INVALID');
        assert.equal(await n.h.balance(bob), '0.00');
        assert.deepEqual((await n.rows<{ state: string }>('SELECT state FROM opera_tokens ORDER BY value')).map((r) => r.state), ['issued', 'issued']);
        assert.deepEqual(await n.findings(), []);
        await n.conservation(150n);
      } finally {
        await n.h.close();
      }
    });
  });
}
