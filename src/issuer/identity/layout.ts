/**
 * Where a node keeps its identity in its data folder. The identity is one folder, created whole
 * under a temporary name and renamed into place, so it is either complete or absent.
 */
import { join } from 'node:path';
import { folderMode } from '../../host/files.ts';

/** The identity folder inside the data folder. */
export const IDENTITY_DIR = 'identity';
/** Prefix of the temporary folder a first start builds the identity in. */
export const IDENTITY_TEMP_PREFIX = '.identity.tmp-';
/** The generated passphrase file inside the data folder (when TALLY_NODE_PASSPHRASE is not set). */
export const PASSPHRASE_FILE = 'passphrase';

/** The folder of an intermediary's enrolment under way (its key, sealed, and its request). */
export const ENROLMENT_DIR = 'enrolment';

/** The files of the identity folder. */
export const IDENTITY_FILES = {
  manifest: 'node.cbor',
  rootKey: 'root.key',
  rootCertificate: 'root.cert',
  intermediaryKey: 'intermediary.key',
  intermediaryCertificate: 'intermediary.cert',
  issuerNodeKey: 'issuer-node.key',
  issuerNodeCertificate: 'issuer-node.cert',
  revocationList: 'revocation-list.cbor',
  operatorToken: 'operator-token',
  /** The central bank's secp256k1 key on the Ethereum chain (chain-tee: the token's minter). */
  chainKey: 'chain.key',
} as const;

/** The identity folder of a data folder. */
export function identityDir(dataDir: string): string {
  return join(dataDir, IDENTITY_DIR);
}

/** True when the data folder holds an identity (complete, since it is only ever renamed into place whole). */
export async function hasIdentity(dataDir: string): Promise<boolean> {
  return (await folderMode(identityDir(dataDir))) !== null;
}

/** True when the data folder holds an enrolment under way (and so an intermediary key, sealed). */
export async function hasEnrolment(dataDir: string): Promise<boolean> {
  return (await folderMode(join(dataDir, ENROLMENT_DIR))) !== null;
}
