/**
 * The factory step for software secure elements. A phone's secure element arrives with a key of
 * its maker (the OEM) that attests "this public key lives in a secure element of model M running
 * trusted app build B" (OEMVerify in Figure 3 of the two-tier paper). A software secure element has no maker, so the
 * home folder plays one: `oem/oem.json` holds an OEM signing key, enrolled at a node by its
 * operator (`tally operator oem`), and the build B is measured here as the SHA-256 of the trusted
 * app's whole import closure (src/secure-element/measure.ts). Changing any file it runs changes the
 * measurement, and the node then refuses to register devices running the new build until the
 * operator allows it.
 *
 * This is a test-grade OEM: its key sits in a 0600 file beside the wallets. A deployment uses the
 * attestation of real hardware instead; the node's checks are the same.
 */
import { join } from 'node:path';
import { fromHex, toBase64url, toHex } from '../core/bytes.ts';
import { hkdf, randomBytes } from '../core/crypto/hash.ts';
import { signerFromSecret, type Signer } from '../core/crypto/suite.ts';
import { isTallyError } from '../core/errors.ts';
import { measureTrustedApp as measureClosure } from '../secure-element/measure.ts';
import { ensurePrivateDir, readFileBounded, requirePrivateMode, writeFileAtomic } from '../host/files.ts';
import { decodeJsonFile, oemFileCodec } from './files.ts';
import { keyId } from '../pki/key-id.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import type { NodeClient } from './node-client.ts';
import { makerOf } from './device-credential.ts';

/** The model name the software OEM attests. */
export const SOFTWARE_SE_MODEL = 'Tally software SE (isolated process)';

/** A trusted app's build, as the factory measures it. */
export interface MeasuredBuild {
  /** The file the trusted app is defined in, under src/ (`schemes/x/trusted-app.ts`): the measurement covers its import closure. */
  readonly entry: string;
}

/** SHA-256 over a trusted app's whole import closure (src/secure-element/measure.ts), the same for every scheme. */
export function measureTrustedApp(build: MeasuredBuild): Promise<Uint8Array> {
  return measureClosure(build.entry);
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
  /** The seed of its anonymous-credential (BBS) key, drawn from its secret under its own label. */
  readonly credentialSeed: Uint8Array;
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
  const signer = signerFromSecret(nodeProvider.suites.ed25519, fromHex(file.secret));
  const credentialSeed = hkdf({ ikm: fromHex(file.secret), info: 'tally/oem/anonymous-credential/v1', length: 32 });
  return { signer, keyId: toHex(keyId(signer.publicKey)), credentialSeed, isEnrolledAt: (url) => Object.hasOwn(file.enrolled, url) };
}

/** The home's OEM, or null when there is none yet. */
export async function loadOem(home: string): Promise<Oem | null> {
  const file = await readOem(home);
  return file === null ? null : oemOf(file);
}

/** A trusted app whose build the factory allows at a node. */
export interface FactoryBuild extends MeasuredBuild {
  /** The scheme it runs. */
  readonly scheme: string;
  readonly description: string;
  /**
   * The devices of this build hold an anonymous credential from the OEM (device-credential.ts):
   * the node route (operator) where the OEM's credential key and the build's reference PCR value
   * are enrolled, as `{publicKey, reference}` in base64url.
   */
  readonly anonymousCredential?: { readonly enrollPath: string } | undefined;
}

/**
 * Creates the home's OEM key if needed, enrolls it at the node and allows the current builds of
 * `builds` (every scheme's trusted apps) of the schemes the node serves (a node may serve only
 * some: run it again after the node serves more). Safe to run again (an OEM already enrolled, a
 * build already allowed are fine).
 * @throws TallyError NODE_UNREACHABLE, NODE_REFUSED (e.g. a wrong operator token)
 */
export async function enrollOem(home: string, node: NodeClient, token: string, builds: readonly FactoryBuild[]): Promise<{ keyId: string; measurement: string; measurements: { scheme: string; measurement: string }[]; created: boolean }> {
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
  const listed = (await node.info()).schemes;
  const measurements: { scheme: string; measurement: string }[] = [];
  for (const build of builds) {
    // A scheme the node does not serve has no routes there, its credential route among them.
    if (listed !== undefined && !Object.hasOwn(listed, build.scheme)) continue;
    const measurement = toHex(await measureTrustedApp(build));
    await node.operator(token, 'POST', '/v1/operator/measurements', {
      body: { measurement, scheme: build.scheme, description: build.description },
      idempotencyKey: `measurement-${measurement}`,
    });
    measurements.push({ scheme: build.scheme, measurement });
    if (build.anonymousCredential !== undefined) {
      const maker = await makerOf(oem, fromHex(measurement));
      await node.operator(token, 'POST', build.anonymousCredential.enrollPath, {
        body: { publicKey: toBase64url(maker.publicKey), reference: toBase64url(maker.reference) },
        idempotencyKey: `maker-${toHex(maker.reference)}-${toHex(maker.publicKey).slice(0, 32)}`,
      });
    }
  }
  file.enrolled[node.url] = oem.keyId;
  await writeFileAtomic(oemPath(home), new TextEncoder().encode(`${JSON.stringify(file, null, 2)}\n`));
  return { keyId: oem.keyId, measurement: measurements[0]?.measurement ?? '', measurements, created };
}
