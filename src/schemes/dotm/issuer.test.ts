/**
 * DOT-M registration (§3.3.1) and account synchronization (§3.3.2) on a real node, PGlite and
 * PostgreSQL, with in-process trusted apps.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { verifyBlock } from './block.ts';
import { decodeBlock } from './messages.ts';
import { splitValue } from './node.ts';
import { dotmNode } from './test-fixtures.ts';

after(() => closeTestTemplates());

test('splitValue: parts as equal as possible, larger first, adding up', () => {
  assert.deepEqual(splitValue(1000n, 3), [334n, 333n, 333n]);
  assert.deepEqual(splitValue(5n, 5), [1n, 1n, 1n, 1n, 1n]);
  assert.deepEqual(splitValue(7n, 1), [7n]);
});

for (const backend of testBackends()) {
  describe(`DOT-M node on ${backend.kind}`, { skip: backend.skip }, () => {
    test('registration certifies the user key and the wallet key together; the trusted app installs them', async () => {
      const n = await dotmNode(backend);
      try {
        const alice = await n.party('alice');
        const bob = await n.party('bob');
        const res = await n.h.signed(alice.user, 'GET', `/v1/dotm/wallets/${alice.wallet}`);
        assert.equal(res.status, 200, await res.clone().text());
        const wallet = (await res.json()) as { wallet: string; user: string; account: string; lastSeq: number; revoked: boolean; ucert: string; wcert: string };
        assert.deepEqual([wallet.user, wallet.account, wallet.lastSeq, wallet.revoked], [alice.userKeyId, alice.account, 0, false]);
        const ucert = decodeCertificate(fromBase64url(wallet.ucert));
        const wcert = decodeCertificate(fromBase64url(wallet.wcert));
        assert.equal(ucert.body.role, 'user');
        assert.equal(ucert.body.extensions.currency, 'EUR');
        assert.equal(wcert.body.role, 'device');
        assert.equal(wcert.body.extensions.scheme, 'dotm');
        assert.equal(toHex(wcert.body.extensions.owner ?? new Uint8Array()), alice.userKeyId);
        assert.equal(wcert.body.extensions.deviceModel, 'Test SE');
        assert.equal(toHex(keyId(wcert.body.subject)), alice.wallet);
        const status = await alice.se.call('status', {});
        assert.equal(status.certified, true);
        assert.equal(status.currency, 'EUR');
        assert.equal(toHex(keyId(status.userKey)), alice.userKeyId);
        // Only the owner and the operator read a wallet.
        await expectError(await n.h.signed(bob.user, 'GET', `/v1/dotm/wallets/${alice.wallet}`), 403, 'FORBIDDEN');
        assert.equal((await n.h.send('GET', `/v1/dotm/wallets/${alice.wallet}`, { headers: n.h.operator })).status, 200);
        await expectError(await n.h.send('GET', `/v1/dotm/wallets/${'0'.repeat(64)}`, { headers: n.h.operator }), 404, 'DEVICE_UNKNOWN');
        await n.conservation([alice.se, bob.se]);
      } finally {
        await n.close();
      }
    });

    test('registration refuses bad proofs, a wallet proof for another owner, an unknown OEM, a build not allowed, and a second registration', async () => {
      const n = await dotmNode(backend);
      try {
        const carol = await n.unregistered('carol');
        const dave = await n.unregistered('dave');
        const body = n.registration(carol);
        // usk's proof replaced by wsk's: it is the wrong key's signature.
        await expectError(await n.register(carol, { ...body, userProof: body.walletProof }), 401, 'SIGNATURE_INVALID');
        // Someone else's account submits Carol's keys: usk consented to Carol's account only.
        await expectError(await n.register(dave, body), 401, 'SIGNATURE_INVALID');
        // wsk proves possession, but for the account key rather than Carol's user key.
        const wsk = await n.extractWalletKey(carol.dir);
        const wrongOwner = signRegistrationProof(wsk, { owner: fromHex(carol.keyId), scheme: 'dotm' });
        await expectError(await n.register(carol, { ...body, walletProof: toBase64url(wrongOwner) }), 401, 'SIGNATURE_INVALID');
        // A wallet proof for another scheme.
        const otherScheme = signRegistrationProof(wsk, { owner: keyId(carol.init.userKey), scheme: 'ops' });
        await expectError(await n.register(carol, { ...body, walletProof: toBase64url(otherScheme) }), 401, 'SIGNATURE_INVALID');
        await expectError(await n.register(carol, n.registration(carol, { oem: '0'.repeat(64) })), 403, 'OEM_UNKNOWN');
        await expectError(await n.register(carol, n.registration(carol, { measurement: sha256(utf8('some other build')) })), 403, 'ATTESTATION_INVALID');
        await expectError(await n.register(carol, { ...body, attestation: toBase64url(new Uint8Array([1, 2, 3])) }), 403, 'ATTESTATION_INVALID');
        await expectError(await n.register(carol, { ...body, walletKey: body.userKey }), 400, 'BODY_INVALID');
        // Nothing of the refused attempts was kept.
        const wallet = toHex(keyId(carol.init.walletKey));
        await expectError(await n.h.send('GET', `/v1/dotm/wallets/${wallet}`, { headers: n.h.operator }), 404, 'DEVICE_UNKNOWN');

        const ok = await n.register(carol, body);
        assert.equal(ok.status, 201, await ok.clone().text());
        await expectError(await n.register(carol, body), 409, 'ALREADY_REGISTERED');
        await n.conservation([]);
      } finally {
        await n.close();
      }
    });

    test('issue: blocks signed by the central bank, split as asked, loaded by the trusted app; a retry answers the same blocks', async () => {
      const n = await dotmNode(backend);
      try {
        const alice = await n.party('alice', '100.00');
        const retryKey = n.key();
        const res = await n.issue(alice, '10.00', { blocks: 3, key: retryKey });
        assert.equal(res.status, 201, await res.clone().text());
        const first = (await res.json()) as { blocks: string[]; transfer: { amount: string; from: string; to: string } };
        assert.deepEqual([first.transfer.amount, first.transfer.from, first.transfer.to], ['10.00', alice.account, 'float:dotm']);
        const again = await n.issue(alice, '10.00', { blocks: 3, key: retryKey });
        assert.equal(again.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(await again.json(), first);
        assert.equal(await n.h.balance(alice), '90.00');

        const { identity } = n.h.node.services;
        const blocks = first.blocks.map((b) => decodeBlock(fromBase64url(b)));
        assert.deepEqual(blocks.map((b) => b.presentation.value), [334n, 333n, 333n]);
        for (const block of blocks) {
          const verified = verifyBlock(block, {
            provider: nodeProvider,
            centralBankKey: identity.root.certificate.body.subject,
            trustAnchors: [identity.root.certificate],
            intermediaries: [identity.intermediary.certificate],
            now: n.h.now(),
            currency: 'EUR',
          });
          assert.equal(toHex(verified.holder), alice.userKeyId);
          assert.deepEqual([block.records.length, block.remaining], [0, block.presentation.value]);
        }
        assert.equal((await alice.se.call('load', { blocks, now: n.h.now() })).balance, 1000n);
        // The default is one block.
        const one = await n.withdraw(alice, '2.50');
        assert.deepEqual(one.map((b) => b.presentation.value), [250n]);
        await n.conservation([alice.se]);
      } finally {
        await n.close();
      }
    });

    test('issue refuses an amount over the balance, another account\'s wallet, and impossible splits, changing nothing', async () => {
      const n = await dotmNode(backend);
      try {
        const alice = await n.party('alice', '5.00');
        const bob = await n.party('bob', '50.00');
        await expectError(await n.issue(alice, '10.00'), 422, 'INSUFFICIENT_FUNDS');
        assert.equal(await n.h.balance(alice), '5.00');
        await expectError(await n.issue(bob, '1.00', { wallet: alice.wallet }), 404, 'DEVICE_UNKNOWN');
        await expectError(await n.issue(alice, '0.02', { blocks: 3 }), 400, 'AMOUNT_INVALID');
        await expectError(await n.issue(alice, '1.00', { blocks: 21 }), 400, 'BODY_INVALID');
        await expectError(await n.issue(alice, '0'), 400, 'AMOUNT_INVALID');
        assert.equal(await n.h.balance(bob), '50.00');
        const { rows } = await n.h.node.services.db.query<{ n: bigint }>('SELECT count(*) AS n FROM dotm_blocks');
        assert.equal(rows[0]?.n, 0n);
        await n.conservation([alice.se, bob.se]);
      } finally {
        await n.close();
      }
    });
  });
}
