/**
 * The factory step for software secure elements. A phone's secure element arrives with a key of
 * its maker (the OEM) that attests "this public key lives in a secure element of model M running
 * trusted app build B" (OPS Figure 3, OEMVerify). A software secure element has no maker, so the
 * home folder plays one: `oem/oem.json` holds an OEM signing key, enrolled at a node by its
 * operator (`tally operator oem`), and the build B is measured here as the SHA-256 of the trusted
 * app's source files. Changing those files changes the measurement, and the node then refuses to
 * register devices running the new build until the operator allows it.
 *
 * This is a test-grade OEM: its key sits in a 0600 file beside the wallets. A deployment uses the
 * attestation of real hardware instead; the node's checks are the same.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { concatBytes, fromHex, toBase64url, toHex } from '../core/bytes.ts';
import { randomBytes, sha256 } from '../core/crypto/hash.ts';
import { nobleEd25519 } from '../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { ensurePrivateDir, readFileBounded, requirePrivateMode, writeFileAtomic } from '../host/files.ts';
import { decodeJsonFile, oemFileCodec } from './files.ts';
import { keyId } from '../pki/key-id.ts';
import type { NodeClient } from './node-client.ts';

/** The model name the software OEM attests. */
export const SOFTWARE_SE_MODEL = 'Tally software SE (isolated process)';

/** The trusted app's source files, relative to src/schemes/ops: what the measurement covers. */
const OPS_TA_SOURCES = ['trusted-app.ts', 'trusted-app-state.ts', 'messages.ts', 'pay-verify.ts'] as const;

/** The DOT-M trusted app's source files, relative to src/schemes/dotm. */
const DOTM_TA_SOURCES = ['trusted-app.ts', 'trusted-app-state.ts', 'messages.ts', 'block.ts', 'online.ts'] as const;

/** SHA-256 over the OPS trusted app's source files (name, length and bytes of each, in order). */
export function measureOpsTrustedApp(): Promise<Uint8Array> {
  return measure('ops', OPS_TA_SOURCES);
}

/** SHA-256 over the DOT-M trusted app's source files, measured the same way. */
export function measureDotmTrustedApp(): Promise<Uint8Array> {
  return measure('dotm', DOTM_TA_SOURCES);
}

async function measure(scheme: string, sources: readonly string[]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (const name of sources) {
    const data = new Uint8Array(await readFile(new URL(`../schemes/${scheme}/${name}`, import.meta.url)));
    const header = new TextEncoder().encode(`${name}\n${data.length}\n`);
    parts.push(header, data);
  }
  return sha256(concatBytes(...parts));
}

interface OemFile {
  format: 1;
  secret: string;
  /** Node URL → the OEM key id the node enrolled. */
  enrolled: Record<string, string>;
}

/** The home's OEM: its signer and where it is enrolled. */
export interface Oem {
  readonly signer: Signer;
  readonly keyId: string;
  isEnrolledAt(nodeUrl: string): boolean;
}

function oemPath(home: string): string {
  return join(home, 'oem', 'oem.json');
}

async function readOem(home: string): Promise<OemFile | null> {
  const path = oemPath(home);
  const file = await readFileBounded(path, 'OEM key file', 64 * 1024);
  if (file === null) return null;
  requirePrivateMode(path, 'OEM key file', file.mode);
  return decodeJsonFile(path, 'OEM key file', oemFileCodec, new TextDecoder().decode(file.data));
}

function oemOf(file: OemFile): Oem {
  const signer = signerFromSecret(nobleEd25519, fromHex(file.secret));
  return { signer, keyId: toHex(keyId(signer.publicKey)), isEnrolledAt: (url) => Object.hasOwn(file.enrolled, url) };
}

/** The home's OEM, or null when there is none yet. */
export async function loadOem(home: string): Promise<Oem | null> {
  const file = await readOem(home);
  return file === null ? null : oemOf(file);
}

/**
 * Creates the home's OEM key if needed, enrolls it at the node and allows the current builds of the
 * OPS and DOT-M trusted apps. Safe to run again (an OEM already enrolled, a build already allowed are fine).
 * @throws TallyError NODE_UNREACHABLE, NODE_REFUSED (e.g. a wrong operator token)
 */
export async function enrollOem(home: string, node: NodeClient, token: string): Promise<{ keyId: string; measurement: string; created: boolean }> {
  let file = await readOem(home);
  const created = file === null;
  if (file === null) {
    await ensurePrivateDir(join(home, 'oem'));
    file = { format: 1, secret: toHex(randomBytes(32)), enrolled: {} };
    await writeFileAtomic(oemPath(home), new TextEncoder().encode(`${JSON.stringify(file, null, 2)}\n`));
  }
  const oem = oemOf(file);
  try {
    await node.operator(token, 'POST', '/v1/operator/oems', {
      body: { name: 'Tally software OEM', publicKey: { suite: 'ed25519', key: toBase64url(oem.signer.publicKey.key) } },
      idempotencyKey: `oem-${oem.keyId}`,
    });
  } catch (e) {
    if (!(isTallyError(e, 'NODE_REFUSED') && e.details.code === 'ALREADY_REGISTERED')) throw e;
  }
  const measurement = toHex(await measureOpsTrustedApp());
  await node.operator(token, 'POST', '/v1/operator/measurements', {
    body: { measurement, scheme: 'ops', description: 'OPS trusted app, software build' },
    idempotencyKey: `measurement-${measurement}`,
  });
  const dotm = toHex(await measureDotmTrustedApp());
  await node.operator(token, 'POST', '/v1/operator/measurements', {
    body: { measurement: dotm, scheme: 'dotm', description: 'DOT-M trusted app, software build' },
    idempotencyKey: `measurement-${dotm}`,
  });
  file.enrolled[node.url] = oem.keyId;
  await writeFileAtomic(oemPath(home), new TextEncoder().encode(`${JSON.stringify(file, null, 2)}\n`));
  return { keyId: oem.keyId, measurement, created };
}
