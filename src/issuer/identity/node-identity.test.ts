import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currency } from '../../core/amount.ts';
import { fromBase64url, toBase64url, utf8 } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate, encodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { verifyRevocationList } from '../../pki/revocation.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { createIdentity, newOperatorToken, OPERATOR_TOKEN_BYTES } from './create-identity.ts';
import { IDENTITY_FILES, IDENTITY_TEMP_PREFIX } from './layout.ts';
import { loadOrCreateIdentity, rootSigner, type LoadOrCreateIdentityOptions, type NodeIdentity } from './node-identity.ts';
import { resolvePassphrase } from './passphrase.ts';

const POSIX = process.platform !== 'win32';
const EUR = currency('EUR', 2);
const NOW = Date.UTC(2025, 5, 1);
const PASSPHRASE = 'node passphrase';
const MESSAGE = utf8('deposit confirmation');

async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const info = await stat(path);
    out.set(path, `${info.mode.toString(8)} ${entry.isFile() ? (await readFile(path)).toString('hex') : 'dir'}`);
  }
  return out;
}

async function flipFileByte(path: string, index: (length: number) => number): Promise<void> {
  const data = await readFile(path);
  const i = index(data.length);
  data[i] = (data[i] as number) ^ 0x01;
  await writeFile(path, data);
}

function signerOf(identity: NodeIdentity, key: 'root' | 'intermediary' | 'issuerNode') {
  return key === 'root' ? rootSigner(identity) : identity[key].signer;
}

function verifies(identity: NodeIdentity, key: keyof Pick<NodeIdentity, 'root' | 'intermediary' | 'issuerNode'>): boolean {
  const { certificate } = identity[key];
  const signer = signerOf(identity, key);
  return nodeProvider.suites.ed25519.verify(certificate.body.subject.key, signer.sign(MESSAGE), MESSAGE);
}

describe('loadOrCreateIdentity', () => {
  let base = '';
  let n = 0;
  const fresh = () => join(base, `data-${++n}`);
  const options = (dataDir: string, more?: Partial<LoadOrCreateIdentityOptions>): LoadOrCreateIdentityOptions => ({
    dataDir,
    passphrase: PASSPHRASE,
    provider: nodeProvider,
    currency: EUR,
    now: NOW,
    ...more,
  });
  let dataDir = '';
  let first: NodeIdentity;
  const lines: string[] = [];

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'tally-identity-'));
    dataDir = fresh();
    first = await loadOrCreateIdentity(options(dataDir, { log: (line) => lines.push(line) }));
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('creates the hierarchy on first start and loads the same one later', async () => {
    assert.equal(first.created, true);
    assert.equal(first.generatedPassphrase, false);
    assert.deepEqual(lines, []);
    assert.equal(first.root.certificate.body.role, 'root');
    assert.equal(first.intermediary.certificate.body.role, 'intermediary');
    assert.equal(first.issuerNode.certificate.body.role, 'issuer-node');
    assert.equal(first.revocationList.body.version, 1);
    assert.deepEqual(first.revocationList.body.revoked, []);
    assert.equal(fromBase64url(first.operatorToken).length, 32);
    assert.deepEqual(first.currency, EUR);
    assert.equal(first.createdAt, NOW);

    const again = await loadOrCreateIdentity(options(dataDir, { now: NOW + 86_400_000 }));
    assert.equal(again.created, false);
    for (const key of ['root', 'intermediary', 'issuerNode'] as const) {
      assert.deepEqual(encodeCertificate(again[key].certificate), encodeCertificate(first[key].certificate), key);
      assert.deepEqual(signerOf(again, key).publicKey, signerOf(first, key).publicKey, key);
      assert.ok(verifies(again, key), `${key} signs for its certificate`);
    }
    assert.equal(again.operatorToken, first.operatorToken);
    assert.equal(await readFile(again.operatorTokenFile, 'utf8'), `${first.operatorToken}\n`);
    verifyRevocationList(nodeProvider, again.revocationList, again.intermediary.signer.publicKey);
  });

  it('chains: intermediary under the root, issuer node under the intermediary', () => {
    const anchors = [first.root.certificate];
    const intermediary = verifyChain({ provider: nodeProvider, chain: [first.intermediary.certificate], trustAnchors: anchors, now: NOW, leafRoles: ['intermediary'] });
    assert.deepEqual(intermediary.anchor, first.root.certificate);
    const issuerNode = verifyChain({
      provider: nodeProvider,
      chain: [first.issuerNode.certificate, first.intermediary.certificate],
      trustAnchors: anchors,
      now: NOW,
      revocations: [first.revocationList],
      leafRoles: ['issuer-node'],
    });
    assert.equal(issuerNode.path.length, 3);
    assert.equal(first.root.certificate.body.notAfter - first.root.certificate.body.notBefore >= 10 * 365 * 86_400_000, true);
    assert.equal(first.root.certificate.body.extensions.currency, 'EUR');
  });

  it('keeps keys, token and passphrase in 0600 files and the folders at 0700', { skip: !POSIX }, async () => {
    const dir = fresh();
    const passphrase = await resolvePassphrase({ dataDir: dir, env: {} });
    const identity = await loadOrCreateIdentity(options(dir, { passphrase }));
    assert.equal(identity.generatedPassphrase, true);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(identity.directory)).mode & 0o777, 0o700);
    for (const name of ['passphrase', 'identity/root.key', 'identity/intermediary.key', 'identity/issuer-node.key', 'identity/chain.key', 'identity/operator-token']) {
      assert.equal((await stat(join(dir, name))).mode & 0o777, 0o600, name);
    }
    assert.deepEqual((await readdir(identity.directory)).sort(), Object.values(IDENTITY_FILES).sort());
    assert.deepEqual((await readdir(dir)).sort(), ['identity', 'passphrase']);
  });

  it('refuses a wrong passphrase, naming the variable, and writes nothing', async () => {
    const before = await snapshot(dataDir);
    await assert.rejects(loadOrCreateIdentity(options(dataDir, { passphrase: 'not it' })), (e: unknown) => {
      assert.ok(isTallyError(e, 'AEAD_FAILED'));
      assert.match(e.message, /^wrong passphrase for .*\.key: set TALLY_NODE_PASSPHRASE to the passphrase used when the node was created$/);
      return true;
    });
    assert.deepEqual(await snapshot(dataDir), before);
  });

  it('refuses a data folder of another currency', async () => {
    await assert.rejects(loadOrCreateIdentity(options(dataDir, { currency: currency('USD', 2) })), {
      code: 'CURRENCY_MISMATCH',
      message: new RegExp(`the data folder ${dataDir} belongs to a node issuing EUR with 2 decimals, not USD with 2`),
    });
    await assert.rejects(loadOrCreateIdentity(options(dataDir, { currency: currency('EUR', 3) })), { code: 'CURRENCY_MISMATCH' });
  });

  async function copyOfIdentity(): Promise<string> {
    const dir = fresh();
    await cp(dataDir, dir, { recursive: true });
    return dir;
  }

  it('refuses a tampered key file', async () => {
    const dir = await copyOfIdentity();
    await flipFileByte(join(dir, 'identity', IDENTITY_FILES.intermediaryKey), () => 20);
    await assert.rejects(loadOrCreateIdentity(options(dir)), { code: 'STATE_CORRUPT' });
  });

  it('refuses a tampered certificate', async () => {
    const dir = await copyOfIdentity();
    await flipFileByte(join(dir, 'identity', IDENTITY_FILES.issuerNodeCertificate), (length) => length - 1);
    await assert.rejects(loadOrCreateIdentity(options(dir)), { code: 'CERT_SIGNATURE_INVALID' });
  });

  it("refuses another identity's certificate beside this identity's key", async () => {
    const other = fresh();
    await loadOrCreateIdentity(options(other));
    const dir = await copyOfIdentity();
    await cp(join(other, 'identity', IDENTITY_FILES.issuerNodeCertificate), join(dir, 'identity', IDENTITY_FILES.issuerNodeCertificate));
    await assert.rejects(loadOrCreateIdentity(options(dir)), { code: 'KEY_INVALID' });
    await cp(join(other, 'identity', IDENTITY_FILES.issuerNodeKey), join(dir, 'identity', IDENTITY_FILES.issuerNodeKey));
    await assert.rejects(loadOrCreateIdentity(options(dir)), { code: 'CERT_CHAIN_INVALID' }, 'a matching pair from another hierarchy does not chain');
  });

  it('refuses a tampered revocation list and a missing file', async () => {
    const dir = await copyOfIdentity();
    await flipFileByte(join(dir, 'identity', IDENTITY_FILES.revocationList), (length) => length - 1);
    await assert.rejects(loadOrCreateIdentity(options(dir)), { code: 'CRL_INVALID' });
    const missing = await copyOfIdentity();
    await unlink(join(missing, 'identity', IDENTITY_FILES.manifest));
    await assert.rejects(loadOrCreateIdentity(options(missing)), { code: 'STATE_CORRUPT', message: /is incomplete: node\.cbor is missing/ });
    assert.deepEqual((await readdir(missing)).sort(), ['identity'], 'nothing was created in its place');
  });

  it('refuses an operator token file or identity folder others can read', { skip: !POSIX }, async () => {
    const dir = await copyOfIdentity();
    await chmod(join(dir, 'identity', IDENTITY_FILES.operatorToken), 0o644);
    await assert.rejects(loadOrCreateIdentity(options(dir)), { code: 'STATE_CORRUPT', message: /chmod 600/ });
    await chmod(join(dir, 'identity', IDENTITY_FILES.operatorToken), 0o600);
    await chmod(join(dir, 'identity'), 0o755);
    await assert.rejects(loadOrCreateIdentity(options(dir)), { code: 'STATE_CORRUPT', message: /chmod 700/ });
  });

  it('refuses certificates past their end', async () => {
    const later = first.issuerNode.certificate.body.notAfter + 1;
    await assert.rejects(loadOrCreateIdentity(options(dataDir, { now: later })), { code: 'CERT_EXPIRED' });
  });

  it('warns when a certificate is near its end', async () => {
    const warned: string[] = [];
    await loadOrCreateIdentity(options(dataDir, { now: first.issuerNode.certificate.body.notAfter - 86_400_000, log: (line) => warned.push(line) }));
    assert.equal(warned.length, 1);
    assert.match(warned[0] ?? '', /certificate issuer-node\.cert .* expires on/);
  });

  it('does not load a half-created identity after a crash: it starts over', async () => {
    const dir = fresh();
    // A first start that died while writing: a temporary folder with some of the files.
    const abandoned = join(dir, `${IDENTITY_TEMP_PREFIX}0011223344556677`);
    await mkdir(abandoned, { recursive: true, mode: 0o700 });
    await cp(join(dataDir, 'identity', IDENTITY_FILES.rootKey), join(abandoned, IDENTITY_FILES.rootKey));
    await cp(join(dataDir, 'identity', IDENTITY_FILES.rootCertificate), join(abandoned, IDENTITY_FILES.rootCertificate));
    // And one that died after writing everything, just before the rename.
    const complete = join(dir, `${IDENTITY_TEMP_PREFIX}8899aabbccddeeff`);
    await cp(join(dataDir, 'identity'), complete, { recursive: true });

    const warned: string[] = [];
    const identity = await loadOrCreateIdentity(options(dir, { log: (line) => warned.push(line) }));
    assert.equal(identity.created, true);
    assert.notDeepEqual(rootSigner(identity).publicKey, rootSigner(first).publicKey, 'a new root, not the leftover one');
    assert.notEqual(identity.operatorToken, first.operatorToken);
    assert.deepEqual(await readdir(dir), ['identity'], 'the leftovers are gone');
    assert.equal(warned.length, 2);
    assert.match(warned.join('\n'), /left by a first start that did not finish/);
    const again = await loadOrCreateIdentity(options(dir));
    assert.equal(again.created, false);
    assert.deepEqual(rootSigner(again).publicKey, rootSigner(identity).publicKey);
  });

  it('leaves an identity another start put in place first untouched', async () => {
    const before = await snapshot(dataDir);
    const result = await createIdentity({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, currency: EUR, now: NOW });
    assert.equal(result, 'raced');
    assert.deepEqual(await snapshot(dataDir), before, 'no temporary folder left, nothing replaced');
  });

  it('checks what it is given: a malformed currency is a RangeError', async () => {
    await assert.rejects(loadOrCreateIdentity(options(fresh(), { currency: { code: 'eur', decimals: 2 } })), RangeError);
    const decoded = decodeCertificate(encodeCertificate(first.root.certificate));
    assert.deepEqual(decoded.body.subject, rootSigner(first).publicKey);
  });
});

test('an operator token never starts with a dash, which a command line would take for an option', () => {
  // 0xf8 >> 2 is 62, the value base64url writes as '-': the first draw is thrown away.
  const draws = [new Uint8Array(32).fill(0xf8), new Uint8Array(32).fill(0x07)];
  let drawn = 0;
  const token = newOperatorToken((length) => {
    assert.equal(length, OPERATOR_TOKEN_BYTES);
    return draws[drawn++] as Uint8Array;
  });
  assert.equal(drawn, 2);
  assert.match(token, /^[A-Za-z0-9_][A-Za-z0-9_-]{42}$/);
  assert.equal(toBase64url(new Uint8Array(32).fill(0xf8))[0], '-', 'the thrown-away draw did start with a dash');
});
